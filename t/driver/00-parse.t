# How block sections are read (no nginx involved): multi-line values, the
# trailing-newline rule, inline values, filters, SKIP and LAST.
use Test::Nginx::Socket 'no_plan';

my %b = map { ($_->name => $_) } blocks();

is scalar(keys %b), 3, 'SKIP block dropped, blocks after LAST dropped';
ok !exists $b{'TEST 2: skipped'}, 'SKIP block is not run';
ok !exists $b{'TEST 5: after LAST'}, 'nothing after LAST';

my $t1 = $b{'TEST 1: values'};
is $t1->multi, "    indented line\nsecond line\n",
    'indentation kept, trailing blank lines collapsed to one "\n"';
is $t1->empty, '', 'a section without lines is ""';
ok defined $t1->empty, '... but defined';
ok !defined $t1->absent, 'an absent section is undef';
is $t1->inline, 'value with  spaces', 'inline value trimmed, no newline';
is $t1->inline_colon, 'Name: value', 'inline value may contain ": "';
is $t1->chomped, "abc", 'chomp drops the final newline';
is $t1->chopped, "abcd", 'chop drops the last char (the newline)';
is $t1->chomp_chop, "abc", 'chomp then chop';
is $t1->two_lines_chomped, "a\nb", 'chomp drops only one newline';

my $t3 = $b{'TEST 3: eval filters'};
is $t3->str, "xxx", 'eval: string result';
is_deeply $t3->arr, ["a", "b\n"], 'eval: arrayref result';
is ref($t3->re), 'Regexp', 'eval: qr// result';
ok "Hello" =~ $t3->re, '... which matches';
is ref($t3->code), 'CODE', 'eval: coderef result';
is $t3->code->(2), 4, '... which runs';
is $t3->eval_chomp, "line\nline", 'eval then chomp (left to right)';
is $t3->chomp_eval, "ab", 'chomp then eval';
is $t3->inline_eval, 500, 'inline value with a filter';

my $t4 = $b{'TEST 4: last'};
ok exists $t4->{LAST}, 'LAST block itself is kept';

__DATA__

=== TEST 1: values
--- multi
    indented line
second line



--- empty
--- inline:    value with  spaces   
--- inline_colon: Name: value
--- chomped chomp
abc
--- chopped chop
abcd
--- chomp_chop chomp chop
abcd
--- two_lines_chomped chomp
a
b

=== TEST 2: skipped
--- SKIP
--- foo
bar

=== TEST 3: eval filters
--- str eval
"x" x 3
--- arr eval
["a", "b\n"]
--- re eval
qr/^hel+o$/i
--- code eval
sub { $_[0] * 2 }
--- eval_chomp eval chomp
"line\n" x 2
--- chomp_eval chomp eval
"a" . "b"
--- inline_eval eval: 250 * 2

=== TEST 4: last
--- LAST
--- foo
bar

=== TEST 5: after LAST
--- foo
bar
