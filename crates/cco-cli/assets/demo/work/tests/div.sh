check div "42 6" 7
check div "7 2" 3
check div "1 0" "error: division by zero"
