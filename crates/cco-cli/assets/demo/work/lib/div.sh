# div A B: prints A divided by B (integer division); B = 0 is an error.
div() {
    if [ "$2" -eq 0 ]; then
        echo "error: division by zero" >&2
        return 1
    fi
    echo $(($1 / $2))
}
