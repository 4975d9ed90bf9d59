# mul A B: prints A times B.
mul() { echo $(($1 * $2)); }
