# add_block_preprocessor: default sections, custom sections, and the order
# in which several preprocessors run (the last one added runs first).
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(sub {
    my $block = shift;
    my $order = $block->order_seen;
    $block->set_value('order_seen', (defined $order ? $order : '') . 'A');

    if (!defined $block->config) {
        my $seen = $block->order_seen;
        $block->set_value('config', <<"_EOC_");
    location = /default {
        return 200 "default config, preprocessors ran in order $seen\\n";
    }
_EOC_
    }
    if (!defined $block->request && defined $block->uri) {
        $block->set_value('request', "GET " . $block->uri . "\n");
    }
});

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('order_seen', 'B');
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: config and request supplied by preprocessors
--- uri: /default
--- response_body
default config, preprocessors ran in order BA



=== TEST 2: sections given by the block win
--- config
    location = /own { return 200 "own config\n"; }
--- uri: /own
--- response_body
own config



=== TEST 3: a block's own request wins too
--- uri: /ignored
--- request
GET /default
--- response_body_like: ^default config
