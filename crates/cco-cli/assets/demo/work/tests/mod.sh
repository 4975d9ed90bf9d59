check mod "7 3" 1
check mod "9 3" 0
check mod "1 0" "error: division by zero"
