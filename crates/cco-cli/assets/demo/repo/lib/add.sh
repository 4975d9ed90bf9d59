# add A B: prints A plus B.
add() { echo $(($1 + $2)); }
