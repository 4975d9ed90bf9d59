check mul "6 7" 42
check mul "-3 3" -9
check mul "0 9" 0
