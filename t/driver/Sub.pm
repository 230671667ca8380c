# A project-style subclass of the driver: tests `use t::driver::Sub`.
package t::driver::Sub;

use Test::Nginx::Socket -Base;

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location = /sub {
        return 200 "from the subclass\n";
    }
_EOC_
    }

    if (!defined $block->request) {
        $block->set_value('request', "GET /sub\n");
    }

    if (!defined $block->no_error_log && !defined $block->error_log) {
        $block->set_value('no_error_log', "[error]\n");
    }
});

1;
