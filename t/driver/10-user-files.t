# user_files (text and eval forms, sub-directories, mtime) and
# post_setup_server_root.
use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_FILE_WORD} = 'expanded';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: text form, several files, sub-directories, $TEST_NGINX_ expansion
--- user_files
>>> a.txt
first file
with two lines
>>> sub/dir/b.txt
$TEST_NGINX_FILE_WORD
--- config
--- request eval
["GET /a.txt", "GET /sub/dir/b.txt"]
--- response_body eval
["first file\nwith two lines\n", "expanded\n"]



=== TEST 2: mtime in touch -t format (GMT)
--- user_files
>>> old.txt 201001020304.05
old
--- config
--- request
GET /old.txt
--- response_headers
Last-Modified: Sat, 02 Jan 2010 03:04:05 GMT
--- response_body
old



=== TEST 3: eval form
--- user_files eval
[["c.txt", "C\n"], ["deep/d.txt", "D", "199912312359"]]
--- config
--- request eval
["GET /c.txt", "GET /deep/d.txt"]
--- response_body eval
["C\n", "D"]
--- response_headers eval
["", "Last-Modified: Fri, 31 Dec 1999 23:59:00 GMT"]



=== TEST 4: the default index.html
--- config
--- request
GET /
--- response_body_like: It works!



=== TEST 5: post_setup_server_root runs after the server root is written
--- post_setup_server_root
open my $fh, '>', Test::Nginx::Socket::html_dir() . '/made.txt' or die $!;
print $fh "made by post_setup_server_root\n";
close $fh;
--- config
--- request
GET /made.txt
--- response_body
made by post_setup_server_root
