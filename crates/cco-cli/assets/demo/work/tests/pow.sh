check pow "2 10" 1024
check pow "7 0" 1
check pow "-3 3" -27
