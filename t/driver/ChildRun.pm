# Helpers for the driver's own tests that need a whole test run to look at:
# write a small .t file, run it with `perl -I t/lib` in a child process with
# its own server root and port, and return its exit status and output.
package t::driver::ChildRun;

use strict;
use warnings;

use Cwd ();
use Exporter 'import';
use File::Spec ();
use File::Temp ();
use IO::Socket::INET ();

our @EXPORT = qw(run_child results free_port child_tmp $PREAMBLE);

# The usual head of a generated test file.
our $PREAMBLE = "use Test::Nginx::Socket 'no_plan';\nrun_tests();\n__DATA__\n\n";

my $lib = File::Spec->rel2abs('t/lib');
die "run the driver tests from the project root (t/lib not found)\n"
    unless -d "$lib/Test/Nginx";
my $tmp = File::Temp::tempdir('driver-child-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# The scratch directory the children run in.
sub child_tmp { $tmp }

# A TCP port that is free on 127.0.0.1 right now.
sub free_port {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                     Proto => 'tcp', Listen => 1) or die $!;
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

# run_child(name, code, ENV_NAME => value, ...): run the test file text
# $code. An env value of undef removes the variable. Returns (exit status,
# stdout and stderr together, the environment the child got).
sub run_child {
    my ($name, $code, %env) = @_;
    my $file = "$tmp/$name.t";
    open my $out, '>', $file or die "$file: $!";
    print $out $code;
    close $out;

    my %child_env = (
        TEST_NGINX_SERVROOT    => "$tmp/servroot-$name",
        TEST_NGINX_PORT        => free_port(),
        TEST_NGINX_NO_SHUFFLE  => 1,
        TEST_NGINX_SERVER_PORT => undef,
        TEST_NGINX_CLIENT_PORT => undef,
        TEST_NGINX_RANDOMIZE   => undef,
        TEST_NGINX_NO_CLEAN    => undef,
        %env,
    );
    local %ENV = %ENV;
    for my $var (keys %child_env) {
        if (defined $child_env{$var}) {
            $ENV{$var} = $child_env{$var};
        } else {
            delete $ENV{$var};
        }
    }

    my $cwd = Cwd::getcwd();
    chdir $tmp or die $!;
    my $output = `$^X -I$lib $file 2>&1`;
    my $status = $? >> 8;
    chdir $cwd or die $!;
    return ($status, $output, \%child_env);
}

# The TAP result lines of a child's output.
sub results {
    my ($output) = @_;
    return grep { /^(?:not )?ok \d+/ } split /\n/, $output;
}

1;
