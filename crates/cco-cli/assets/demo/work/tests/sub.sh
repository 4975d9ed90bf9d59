check sub "5 3" 2
check sub "3 5" -2
