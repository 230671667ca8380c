# check_accum_error_log(): the checks see the whole log, so the second
# repetition also sees the first one's lines.
use Test::Nginx::Socket 'no_plan';

check_accum_error_log();
repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: grep output accumulates; arrays are per repetition
--- config
--- request
GET /missing.txt
--- error_code: 404
--- grep_error_log: No such file or directory
--- grep_error_log_out eval
["No such file or directory\n",
 "No such file or directory\nNo such file or directory\n"]



=== TEST 2: a line logged by the first of two requests satisfies both checks
--- config
    location = /t { return 200 "ok\n"; }
--- request eval
["GET /missing.txt", "GET /t"]
--- error_code eval
[404, 200]
--- error_log
No such file or directory
