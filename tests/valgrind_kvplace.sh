#!/bin/sh
# kvplace under valgrind memcheck, for `make valgrind`: the CLI tests run this as their
# KVPLACE.  A memory error or leak makes the command exit 99 (which no test expects) and
# leaves its report in $VG_LOGDIR/vg.PID.log.
exec valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --log-file="${VG_LOGDIR:-/tmp}/vg.%p.log" \
    "${KVPLACE_REAL:?}" "$@"
