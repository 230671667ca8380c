# Subclassing: t/driver/Sub.pm does `use Test::Nginx::Socket -Base` and adds
# a block preprocessor; this file uses it like a project would.
use FindBin;
use lib "$FindBin::Bin/../..";
use t::driver::Sub 'no_plan';

repeat_each(2);
no_shuffle();
run_tests();

is scalar(blocks()), 2, 'blocks() works through the subclass';

__DATA__

=== TEST 1: everything from the subclass defaults
--- response_body
from the subclass



=== TEST 2: own config and request
--- config
    location = /mine {
        return 200 "mine\n";
    }
--- request
GET /mine
--- response_body
mine
