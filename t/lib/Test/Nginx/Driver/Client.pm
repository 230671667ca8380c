package Test::Nginx::Driver::Client;

# The HTTP client side of the bundled Test::Nginx::Socket:
#
#   * build_request   turns a "--- request" value (plus more_headers) into the
#                     bytes to send, keeping the user's packet boundaries,
#   * send_request    sends packets over one TCP connection with non-blocking
#                     IO and reads until the server closes (or a timeout),
#   * parse_response  splits a raw response into status, headers and body
#                     (Content-Length, chunked or read-until-close),
#   * curl_request    the same exchange done by the curl binary.
#
# Nothing in here emits TAP.

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINTR ECONNREFUSED EINPROGRESS);
use File::Temp ();
use IO::Select ();
use IO::Socket::INET ();
use POSIX ();
use Socket ();
use Text::ParseWords ();
use Time::HiRes ();

# ---------------------------------------------------------------------------
# request building

# Parse "--- more_headers" text. Returns (header block with CRLF line ends,
# is_chunked flag, hashref of lower-cased header names present).
sub parse_more_headers {
    my ($text) = @_;
    my ($out, $chunked, %has) = ('', 0);
    return ($out, $chunked, \%has) unless defined $text;
    for my $line (split /\n+/, $text) {
        $line =~ s/\r$//;
        next if $line =~ /^\s*#/;
        next unless $line =~ /\S/;
        my ($key, $val) = split /:\s*/, $line, 2;
        $val = '' unless defined $val;
        (my $lkey = lc $key) =~ s/^\s+|\s+$//g;
        $has{$lkey} = 1;
        $chunked = 1 if $lkey eq 'transfer-encoding' && $val =~ /^\s*chunked\s*$/i;
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked, \%has);
}

# Build one request. Arguments:
#   packets      arrayref of { value => text, delay_before => secs } as given
#                by the user (a single element for an unsplit request)
#   more_headers "--- more_headers" text (optional)
#   connection   value of the automatic Connection header
#   host         value of the automatic Host header
# Returns a hashref { packets => [...], method, uri, version, head } or
# { error => message }.
sub build_request {
    my (%a) = @_;
    my $packets = $a{packets};
    my $text = join '', map { defined $_->{value} ? $_->{value} : '' } @$packets;

    # where each packet but the first starts, as offsets into $text
    my (@cuts, $acc);
    $acc = 0;
    for my $i (0 .. $#$packets - 1) {
        $acc += length(defined $packets->[$i]{value} ? $packets->[$i]{value} : '');
        push @cuts, $acc;
    }

    # leading white space and "# comment" lines are not part of the request
    my $skip = 0;
    while (1) {
        my $tail = substr $text, $skip;
        if ($tail =~ /\A(\s+)/ || $tail =~ /\A(#[^\n]*(?:\n|\z))/) {
            $skip += length $1;
            next;
        }
        last;
    }

    my $rest = substr $text, $skip;
    $rest =~ /\A([^\r\n]*)(\r?\n|\z)/;
    my ($line, $eol) = ($1, $2);
    my @tok = split ' ', $line;
    return { error => 'request line is empty' } unless @tok;

    my $method = shift @tok;
    my $version = (@tok >= 2 && $tok[-1] =~ m{^HTTP/}i) ? pop @tok : 'HTTP/1.1';
    my $uri = @tok ? join(' ', @tok) : '/';
    my $content_start = $skip + length($line) + length($eol);
    my $content = substr $text, $content_start;

    my ($hdrs, $chunked, $has) = parse_more_headers($a{more_headers});

    # The body is trimmed and measured unless the user takes care of framing.
    my ($len_hdr, $lead) = ('', 0);
    if (!$chunked && $content ne '' && !$has->{'content-length'}) {
        $lead = length $1 if $content =~ /\A(\s*)/;
        $content =~ s/^\s+|\s+$//g;
        $len_hdr = 'Content-Length: ' . length($content) . "\r\n";
    }

    my $reqline = "$method $uri $version";
    my $head = "$reqline\r\n";
    $head .= "Host: $a{host}\r\n" unless $has->{host};
    $head .= "Connection: $a{connection}\r\n" unless $has->{connection};
    $head .= $hdrs . $len_hdr . "\r\n";
    my $req = $head . $content;

    # Map the user's packet boundaries onto the rewritten request: a cut in
    # the request line stays where it was, a cut in the body moves with the
    # body (the automatic headers join the packet holding the request line).
    my @new_cuts;
    for my $c (@cuts) {
        my $n;
        if ($c <= $skip) {
            $n = 0;
        } elsif ($c < $content_start) {
            $n = $c - $skip;
            $n = length $reqline if $n > length $reqline;
        } else {
            my $off = $c - $content_start - $lead;
            $off = 0 if $off < 0;
            $off = length $content if $off > length $content;
            $n = length($head) + $off;
        }
        push @new_cuts, $n;
    }

    my @out;
    my $prev = 0;
    for my $i (0 .. $#$packets) {
        my $end = $i < @new_cuts ? $new_cuts[$i] : length $req;
        $end = $prev if $end < $prev;
        push @out, { %{ $packets->[$i] }, value => substr($req, $prev, $end - $prev) };
        $prev = $end;
    }

    return {
        packets => \@out,
        method  => $method,
        uri     => $uri,
        version => $version,
        headers => $hdrs,
        body    => $content,
        head    => uc($method) eq 'HEAD' ? 1 : 0,
    };
}

# Normalise one packet spec (a string or { value, delay_before }) to a hash.
sub packet {
    my ($p) = @_;
    return ref $p eq 'HASH' ? { %$p } : { value => $p };
}

# ---------------------------------------------------------------------------
# sending

# Send packets over one connection and read the reply until the server
# closes the connection. Arguments:
#   addr, port, packets (as from build_request), timeout (seconds between
#   socket events), gap (pause between packets without delay_before),
#   shutdown (undef, or how for shutdown(2) after the last write).
# Returns { raw => bytes read, timed_out => 0|1, error => message|undef }.
sub send_request {
    my (%a) = @_;
    my $timeout = $a{timeout};
    local $SIG{PIPE} = 'IGNORE';

    my $sock;
    my $deadline = Time::HiRes::time() + ($timeout > 2 ? 2 : $timeout);
    for (my $try = 1; ; $try++) {
        $sock = IO::Socket::INET->new(
            PeerAddr => $a{addr},
            PeerPort => $a{port},
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        last if $sock;
        my $err = $!;
        if ($err != ECONNREFUSED || Time::HiRes::time() > $deadline) {
            return { raw => '', timed_out => 0,
                     error => "Can't connect to $a{addr}:$a{port}: $err" };
        }
        Time::HiRes::sleep($try < 10 ? 0.01 : 0.05);
    }
    $sock->blocking(0);

    my @queue = @{ $a{packets} };
    my ($buf, $off) = ('', 0);
    my ($resp, $writing, $timed_out, $error) = ('', 1, 0, undef);
    my $first = 1;
    my $sel = IO::Select->new($sock);

    while (1) {
        if ($writing && $off >= length $buf) {
            if (@queue) {
                my $next = shift @queue;
                my $delay = $next->{delay_before};
                $delay = $a{gap} if !defined $delay && !$first;
                Time::HiRes::sleep($delay) if $delay;
                $first = 0;
                ($buf, $off) = (defined $next->{value} ? $next->{value} : '', 0);
                next;
            }
            $writing = 0;
            shutdown($sock, $a{shutdown}) if defined $a{shutdown};
        }

        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$r && !$w) {
            next if $! == EINTR;
            $timed_out = 1;
            last;
        }

        if ($w && @$w) {
            my $n = syswrite $sock, $buf, length($buf) - $off, $off;
            if (defined $n) {
                $off += $n;
            } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                # the server went away early; keep whatever it answered
                $error = "write failed: $!";
                $writing = 0;
            }
        }

        if ($r && @$r) {
            my $n = sysread $sock, my $chunk, 65536;
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                $error = "read failed: $!";
                last;
            }
            last if $n == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    return { raw => $resp, timed_out => $timed_out, error => $error };
}

# ---------------------------------------------------------------------------
# response parsing

# Parse one response off the front of $raw. Options: head => 1 for a HEAD
# request (no body). Returns a hashref:
#   code, status_line, raw_headers (status line + header lines, CRLFs kept),
#   headers (lower-cased name => value; repeats joined with ", "),
#   body, left (unparsed bytes after this response), error (if malformed)
sub parse_response {
    my ($raw, %opt) = @_;
    $raw = '' unless defined $raw;
    my %res = (code => undef, status_line => '', raw_headers => '',
               headers => {}, body => '', left => '', error => undef);

    my ($head, $rest);
    my $end = index $raw, "\r\n\r\n";
    if ($end >= 0) {
        $head = substr $raw, 0, $end + 2;
        $rest = substr $raw, $end + 4;
    } else {
        $head = $raw;
        $rest = '';
        $res{error} = 'incomplete response header' if $raw ne '';
    }
    $res{raw_headers} = $head;

    my @lines = split /\r?\n/, $head;
    my $status = @lines ? shift @lines : '';
    $res{status_line} = $status;
    if ($status =~ m{^HTTP/[\d.]+\s+(\d{3})\b}) {
        $res{code} = $1;
    }

    my $last;
    for my $line (@lines) {
        if ($line =~ /^[ \t]+(.*)$/ && defined $last) {      # folded line
            $res{headers}{$last} .= " $1";
            next;
        }
        next unless $line =~ /^([^:]+?)\s*:\s*(.*?)\s*$/;
        my ($name, $value) = (lc $1, $2);
        if (exists $res{headers}{$name}) {
            $res{headers}{$name} .= ", $value";
        } else {
            $res{headers}{$name} = $value;
        }
        $last = $name;
    }

    my $code = $res{code} || 0;
    my $te   = $res{headers}{'transfer-encoding'};
    my $len  = $res{headers}{'content-length'};

    if ($code == 101) {
        $res{body} = $rest;
    } elsif ($opt{head} || $code == 204 || $code == 304) {
        $res{left} = $rest;
    } elsif (defined $te && $te =~ /\bchunked\b/i) {
        my ($body, $left, $err) = decode_chunked($rest);
        $res{body}  = $body;
        $res{left}  = $left;
        $res{error} = $err if defined $err;
    } elsif (defined $len && $len =~ /^\s*(\d+)\s*$/) {
        my $n = $1;
        if (length $rest < $n) {
            $res{body} = $rest;
            $res{truncated} = "$n bytes expected, got " . length $rest;
        } else {
            $res{body} = substr $rest, 0, $n;
            $res{left} = substr $rest, $n;
        }
    } else {
        $res{body} = $rest;
    }
    return \%res;
}

# Decode a chunked body. Returns (decoded, bytes after the last chunk,
# error message or undef).
sub decode_chunked {
    my ($raw) = @_;
    my ($body, $pos) = ('', 0);
    while (1) {
        pos($raw) = $pos;
        unless ($raw =~ /\G[ \t]*([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
            my $what = $pos >= length $raw ? 'no last chunk found'
                                           : 'invalid chunk size line';
            return ($body, '', "invalid chunked body: $what");
        }
        my $size = hex $1;
        $pos = pos $raw;
        if ($size == 0) {
            # optional trailer fields, then an empty line
            pos($raw) = $pos;
            if ($raw =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc) {
                return ($body, substr($raw, pos $raw), undef);
            }
            return ($body, '', 'invalid chunked body: last chunk not terminated');
        }
        if (length($raw) - $pos < $size) {
            $body .= substr $raw, $pos;
            return ($body, '', 'invalid chunked body: not enough data for a chunk');
        }
        $body .= substr $raw, $pos, $size;
        $pos += $size;
        if (substr($raw, $pos, 2) ne "\r\n") {
            return ($body, '', 'invalid chunked body: CRLF expected after chunk data');
        }
        $pos += 2;
    }
}

# ---------------------------------------------------------------------------
# curl

# Build the curl command line for a request built by build_request.
# Arguments: req, scheme (http|https), addr, port, options (string of extra
# curl options), http2 (prior knowledge), timeout, body_file (path holding
# the request body, if any).
sub curl_command {
    my (%a) = @_;
    my $req = $a{req};
    my @cmd = ('curl', '-sS', '-i', '--raw');
    my $method = uc $req->{method};

    if ($method eq 'HEAD') {
        push @cmd, '-I';
    } elsif ($method ne 'GET' || defined $a{body_file}) {
        push @cmd, '-X', $req->{method};
    }
    if ($a{http2}) {
        push @cmd, '--http2-prior-knowledge';
    } elsif ($req->{version} =~ m{^HTTP/1\.0$}i) {
        push @cmd, '--http1.0';
    }
    push @cmd, '--max-time', $a{timeout} if $a{timeout};

    for my $line (split /\r\n/, $req->{headers}) {
        next unless $line =~ /\S/;
        next if $a{http2} && $line =~ /^(?:connection|keep-alive|transfer-encoding)\s*:/i;
        push @cmd, '-H', $line;
    }
    push @cmd, '--data-binary', "\@$a{body_file}" if defined $a{body_file};
    push @cmd, Text::ParseWords::shellwords($a{options}) if defined $a{options};

    my $host = $a{addr} =~ /:/ ? "[$a{addr}]" : $a{addr};
    push @cmd, "$a{scheme}://$host:$a{port}$req->{uri}";
    return \@cmd;
}

# Quote a command line for display.
sub shell_quote {
    my (@args) = @_;
    return join ' ', map {
        my $s = $_;
        $s =~ m{^[-\w.,:/=@%+]+$} ? $s : do { $s =~ s/'/'\\''/g; "'$s'" }
    } @args;
}

# Run curl for one request. Returns { raw, curl_error, exit_code, error }.
sub curl_request {
    my (%a) = @_;
    my $req = $a{req};

    my $body_file;
    if ($req->{body} ne '') {
        my $fh;
        ($fh, $body_file) = File::Temp::tempfile('curl-body-XXXXXX', TMPDIR => 1, UNLINK => 1);
        binmode $fh;
        print $fh $req->{body};
        close $fh;
    }
    my $cmd = curl_command(%a, body_file => $body_file);

    my ($out_fh, $out_file) = File::Temp::tempfile('curl-out-XXXXXX', TMPDIR => 1, UNLINK => 1);
    my ($err_fh, $err_file) = File::Temp::tempfile('curl-err-XXXXXX', TMPDIR => 1, UNLINK => 1);
    my $pid = fork;
    return { raw => '', error => "fork failed: $!" } unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $out_fh;
        open STDERR, '>&', $err_fh;
        { no warnings 'exec'; exec @$cmd; }
        print STDERR "cannot run curl: $!\n";
        POSIX::_exit(127);
    }
    close $out_fh;
    close $err_fh;
    waitpid $pid, 0;
    my $status = $?;

    my $slurp = sub {
        open my $in, '<', $_[0] or return '';
        binmode $in;
        local $/;
        my $data = <$in>;
        close $in;
        return defined $data ? $data : '';
    };
    my %res = (raw => $slurp->($out_file), curl_error => $slurp->($err_file),
               exit_code => $status >> 8, command => $cmd);
    unlink grep { defined } $out_file, $err_file, $body_file;
    return \%res;
}

1;
