# Unit tests of the request builder and response parser (no nginx).
use strict;
use warnings;
use Test::More;
use Test::Nginx::Driver::Client;

my $C = 'Test::Nginx::Driver::Client';

sub build {
    my ($packets, %o) = @_;
    return $C->can('build_request')->(
        packets => [ map { ref $_ ? $_ : { value => $_ } } @$packets ],
        connection => 'close', host => 'localhost', %o);
}

# --- request building
my $r = build(["GET /t\n"]);
is $r->{packets}[0]{value}, "GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    'defaults, CRLF line ends';

$r = build(["POST /t HTTP/1.0\n  body text \n"], more_headers => "X-A: 1\nX-B:2\n# X-C: 3\n");
is $r->{packets}[0]{value},
    "POST /t HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\nX-A: 1\r\nX-B: 2\r\n"
    . "Content-Length: 9\r\n\r\nbody text",
    'more_headers converted to CRLF, comments dropped, body trimmed and measured';

$r = build(["POST /t\n5\r\nhello\r\n0\r\n\r\n"], more_headers => "Transfer-Encoding: chunked");
unlike $r->{packets}[0]{value}, qr/Content-Length/, 'no Content-Length when chunked';
like $r->{packets}[0]{value}, qr/\r\n\r\n5\r\nhello\r\n0\r\n\r\n\z/, 'chunked body untouched';

$r = build(["GET /t\n"], more_headers => "Host: foo\nconnection: keep-alive");
my $v = $r->{packets}[0]{value};
is scalar(() = $v =~ /^host:/mgi), 1, 'one Host header';
is scalar(() = $v =~ /^connection:/mgi), 1, 'one Connection header';

# packets: a cut in the body moves with the body
$r = build(["POST /users\nna", { value => "me=foo", delay_before => 0.5 }]);
is scalar(@{ $r->{packets} }), 2, 'two packets kept';
like $r->{packets}[0]{value}, qr/^POST \/users HTTP\/1\.1\r\n.*Content-Length: 8\r\n\r\nna\z/s,
    'first packet: request line, headers and "na"';
is $r->{packets}[1]{value}, 'me=foo', 'second packet: the rest of the body';
is $r->{packets}[1]{delay_before}, 0.5, 'delay_before kept';

# a cut inside the request line stays there
$r = build(["GE", "T /x"]);
is $r->{packets}[0]{value}, 'GE', 'cut inside the request line';
like $r->{packets}[1]{value}, qr{^T /x HTTP/1\.1\r\nHost}, '... rest of the request';

# --- response parsing
my $p = $C->can('parse_response');
my $res = $p->("HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
is $res->{code}, 200, 'status code';
is $res->{headers}{'x-a'}, '1, 2', 'repeated headers joined with ", "';
is $res->{body}, 'hello', 'Content-Length body';
is $res->{left}, 'EXTRA', 'bytes after the body are left over';
is $res->{raw_headers}, "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n",
    'raw header block keeps CRLFs';

$res = $p->("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            . "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\nNEXT");
is $res->{body}, 'hello world', 'chunked body decoded';
is $res->{left}, 'NEXT', 'bytes after the last chunk left over';
ok !$res->{error}, 'no error';

$res = $p->("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
like $res->{error}, qr/invalid chunked body/, 'truncated chunk is an error';

$res = $p->("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\nuntil close");
is $res->{body}, 'until close', 'no framing: body runs until close';

$res = $p->("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nHTTP/1.1 404 X\r\n\r\n", head => 1);
is $res->{body}, '', 'HEAD response has no body';
like $res->{left}, qr/^HTTP/, '... next response left over';

done_testing();
