check max "3 9" 9
check max "9 3" 9
check max "-1 -5" -1
