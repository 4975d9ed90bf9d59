check add "2 3" 5
check add "-4 4" 0
