# sub A B: prints A minus B.
sub() { echo $(($1 - $2)); }
