//! Tests of the CEL layer: each function of the environment, its error
//! cases, and the JSON conversions.

use super::err::CelxError;
use super::*;
use cel::{Context, ExecutionError, Value};
use serde_json::json;

/// The evaluation time of these tests: a Thursday afternoon in New York.
fn test_now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2023-06-15T14:30:45.250-04:00").unwrap()
}

/// A document the expressions reach as `doc`, alongside `@now`.
fn doc() -> serde_json::Value {
    json!({
        "name": "Ada",
        "tags": ["red", "green", "blue"],
        "nums": [10, 20, 30],
        "nested": {"inner": {"flag": true}},
        "score": 7.5,
        "path": "org.eng.platform",
        "ip4": "172.16.4.20",
        "ip6": "fd00::1:2",
        "created": "2023-06-13T14:30:45.250-04:00",
        "nothing": null
    })
}

fn eval_in(expr: &str, with_now: bool) -> Result<Value, ExecutionError> {
    let program = compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let data = doc();
    let mut ctx = Context::with_env(environment());
    ctx.add_variable_as_val("doc", json_to_val(&data));
    if with_now {
        ctx.add_variable_as_val(NOW_VARIABLE, timestamp_val(test_now()));
    }
    program.execute(&ctx)
}

fn eval(expr: &str) -> Result<Value, ExecutionError> {
    eval_in(expr, true)
}

/// Asserts that each expression evaluates to `true`.
fn all_true(exprs: &[&str]) {
    for expr in exprs {
        assert_eq!(eval(expr), Ok(Value::Bool(true)), "{expr}");
    }
}

/// Asserts that each expression fails to evaluate.
fn all_err(exprs: &[&str]) {
    for expr in exprs {
        let result = eval(expr);
        assert!(result.is_err(), "{expr} should fail, got {result:?}");
    }
}

#[test]
fn the_environment_builds_without_conflicts() {
    assert_eq!(environment_error(), None);
    assert!(Arc::ptr_eq(&environment(), &environment()));
}

#[test]
fn compile_reports_syntax_and_macro_errors() {
    for bad in [
        "1 +",
        "doc.tags.all(1, x, true)",
        "doc.tags.all(x, x, true)",
        "cel.bind(a.b, 1, 2)",
        "{'a': 1}.transformMap(k, k, 1)",
    ] {
        match compile(bad) {
            Err(CelxError::Parse { expression, .. }) => assert_eq!(expression, bad),
            other => panic!("{bad}: expected a parse error, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Variables and the basics.
// ---------------------------------------------------------------------------

#[test]
fn json_attributes_are_reachable() {
    all_true(&[
        "doc.name == 'Ada'",
        "doc.tags[1] == 'green'",
        "doc.nested.inner.flag",
        "doc['nested']['inner'].flag == true",
        "has(doc.name) && !has(doc.missing)",
        "doc.nothing == null",
        "size(doc.tags) == 3 && doc.tags.size() == 3",
        "'red' in doc.tags && 'name' in doc",
    ]);
}

#[test]
fn json_numbers_are_doubles_as_in_cerbos() {
    all_true(&[
        "type(doc.nums[0]) == double",
        "doc.nums[0] == 10",
        "doc.nums[0] == 10.0",
        "doc.nums[1] / doc.nums[0] == 2.0",
        "doc.score > doc.nums[0] - 5.0",
        "doc.nums[0] < 11 && doc.nums[0] > 9u",
    ]);
    // No mixed-type arithmetic, as in cel-go.
    all_err(&["doc.nums[0] + 1"]);
}

#[test]
fn missing_keys_and_wrong_types_are_errors() {
    all_err(&[
        "doc.missing == 'x'",
        "doc.nested.nope.flag",
        "doc.tags[7] == 'x'",
        "doc.name + 1 == 'x'",
        "doc.name.startsWith(1)",
        "undeclared_variable",
    ]);
}

// ---------------------------------------------------------------------------
// now() and timeSince().
// ---------------------------------------------------------------------------

#[test]
fn now_reads_the_evaluation_time() {
    all_true(&[
        "now() == timestamp('2023-06-15T18:30:45.250Z')",
        "now() == now()",
        "now() > timestamp(doc.created)",
        "now().getFullYear() == 2023",
    ]);
}

#[test]
fn time_since_is_measured_from_now() {
    all_true(&[
        "timestamp(doc.created).timeSince() == duration('48h')",
        "timeSince(timestamp(doc.created)) == duration('48h')",
        "timestamp('2023-06-15T18:30:45Z').timeSince() == duration('250ms')",
        "timestamp('2023-06-16T00:00:00Z').timeSince() < duration('0s')",
    ]);
}

#[test]
fn time_functions_fail_without_a_timestamp() {
    all_err(&["doc.created.timeSince()", "duration('1h').timeSince()"]);
    assert!(eval_in("now()", false).is_err());
    assert!(eval_in("timestamp(doc.created).timeSince()", false).is_err());
}

#[test]
fn timestamp_val_keeps_its_offset() {
    let val = timestamp_val(test_now());
    assert_eq!(val.get_type().name(), "google.protobuf.Timestamp");
    // The offset is kept: the getters without a time zone read it.
    all_true(&["now().getHours() == 14", "now().getHours('UTC') == 18"]);
}

// ---------------------------------------------------------------------------
// Timestamp getters.
// ---------------------------------------------------------------------------

#[test]
fn timestamp_getters_take_an_optional_time_zone() {
    all_true(&[
        // 2023-06-15T14:30:45.250-04:00 is 18:30:45.250Z, and 06:30 on the
        // 16th in Auckland (NZST, +12:00).
        "now().getFullYear('UTC') == 2023",
        "now().getMonth() == 5",
        "now().getMonth('Pacific/Auckland') == 5",
        "now().getDate() == 15",
        "now().getDate('NZ') == 16",
        "now().getDayOfMonth() == 14",
        "now().getDayOfMonth('+12:00') == 15",
        "now().getDayOfWeek() == 4",
        "now().getDayOfWeek('NZ') == 5",
        "now().getDayOfYear() == 165",
        "now().getDayOfYear('Asia/Tokyo') == 166",
        "now().getHours('-05:00') == 13",
        "now().getHours('America/New_York') == 14",
        "now().getHours('+05:30') == 0",
        "now().getMinutes('+05:30') == 0",
        "now().getMinutes('UTC') == 30",
        "now().getSeconds('UTC') == 45",
        "now().getSeconds() == 45",
        "now().getMilliseconds() == 250",
        "now().getMilliseconds('Europe/Paris') == 250",
        "timestamp('2024-12-31T23:00:00Z').getDayOfYear() == 365",
        "timestamp('2024-12-31T23:00:00Z').getFullYear('+02:00') == 2025",
        "timestamp('2024-12-31T23:00:00Z').getDayOfYear('+02:00') == 0",
    ]);
}

#[test]
fn timestamp_getters_reject_bad_time_zones() {
    all_err(&[
        "now().getHours('Mars/Olympus_Mons')",
        "now().getDate('+25:00')",
        "now().getMinutes('+05:75')",
        "now().getMonth('nonsense')",
        "now().getHours(5)",
    ]);
}

#[test]
fn timestamps_and_durations_do_arithmetic() {
    all_true(&[
        "timestamp(doc.created) + duration('48h') == now()",
        "now() - duration('1h30m') == timestamp('2023-06-15T17:00:45.250Z')",
        "now() - timestamp(doc.created) == duration('172800s')",
        "duration('1h') > duration('59m')",
        "string(timestamp('2023-01-02T03:04:05Z')) == '2023-01-02T03:04:05Z'",
        "int(duration('1.5s')) == 1500000000 && int(duration('-1ns')) == -1",
    ]);
    all_err(&["timestamp('not a time')", "duration('forever')"]);
}

// ---------------------------------------------------------------------------
// Cerbos set functions and the sets extension.
// ---------------------------------------------------------------------------

#[test]
fn set_functions_work_globally_and_as_methods() {
    all_true(&[
        "intersect(['green', 'pink'], doc.tags) == ['green']",
        "['green', 'pink'].intersect(doc.tags) == ['green']",
        // The result follows the shorter list (the first on a tie).
        "intersect(doc.tags, ['blue', 'red']) == ['blue', 'red']",
        "intersect(['a', 'b'], ['b', 'a']) == ['a', 'b']",
        "intersect([1, 1, 2], [1, 2, 3, 4]) == [1, 1, 2]",
        "intersect([], doc.tags) == []",
        "doc.tags.except(['red']) == ['green', 'blue']",
        "except(doc.tags, []) == doc.tags",
        "hasIntersection(['pink', 'blue'], doc.tags)",
        "!has_intersection(['pink'], doc.tags)",
        "doc.tags.hasIntersection(['red'])",
        "['red', 'blue'].isSubset(doc.tags)",
        "is_subset([], doc.tags)",
        "!isSubset(['red', 'pink'], doc.tags)",
        "['red'].is_subset(doc.tags)",
        // CEL equality across numeric types.
        "intersect([1, 2u, 3.0], [3, 2, 1]) == [1, 2u, 3.0]",
        "[10, 20].isSubset(doc.nums)",
    ]);
}

#[test]
fn set_functions_require_lists() {
    all_err(&[
        "intersect('red', doc.tags)",
        "doc.tags.except('red')",
        "hasIntersection(doc.nested, doc.tags)",
        "isSubset(doc.tags, 1)",
        "sets.contains(doc.tags, 'red')",
    ]);
}

#[test]
fn sets_extension() {
    all_true(&[
        "sets.contains([], [])",
        "!sets.contains([], [1])",
        "sets.contains([1, 2, 3, 4], [2, 3])",
        "sets.contains([1, 2.0, 3u], [1.0, 2u, 3])",
        "sets.equivalent([], [])",
        "sets.equivalent([1], [1, 1])",
        "sets.equivalent([1, 2, 3], [3u, 2.0, 1])",
        "!sets.equivalent([1, 2], [1])",
        "!sets.intersects([1], [])",
        "sets.intersects([1], [1, 2])",
        "sets.intersects([[1], [2, 3]], [[1, 2], [2, 3.0]])",
    ]);
}

// ---------------------------------------------------------------------------
// IP addresses.
// ---------------------------------------------------------------------------

#[test]
fn in_ip_addr_range_matches_ipv4_and_ipv6() {
    all_true(&[
        "doc.ip4.inIPAddrRange('172.16.0.0/12')",
        "!doc.ip4.inIPAddrRange('10.0.0.0/8')",
        "'10.255.255.255'.inIPAddrRange('10.0.0.0/8')",
        "doc.ip6.inIPAddrRange('fd00::/8')",
        "!doc.ip6.inIPAddrRange('2001:db8::/32')",
        "!doc.ip4.inIPAddrRange('::/0')",
        "'::ffff:10.1.2.3'.inIPAddrRange('10.0.0.0/8')",
        "'10.1.2.3'.inIPAddrRange('10.1.2.3/32')",
        "'10.1.2.3'.inIPAddrRange('::ffff:10.0.0.0/104')",
        "!'::ffff:10.1.2.3'.inIPAddrRange('::/0')",
    ]);
}

#[test]
fn in_ip_addr_range_rejects_bad_input() {
    all_err(&[
        "doc.ip4.inIPAddrRange('172.16.0.0')",
        "doc.ip4.inIPAddrRange('172.16.0.0/40')",
        "doc.ip4.inIPAddrRange('not a range')",
        "'999.1.1.1'.inIPAddrRange('10.0.0.0/8')",
        "'host.example'.inIPAddrRange('10.0.0.0/8')",
        "doc.nums.inIPAddrRange('10.0.0.0/8')",
    ]);
}

#[test]
fn network_extension() {
    all_true(&[
        "isIP('1.2.3.4') && isIP('2001:db8::1')",
        "!isIP('1.2.3') && !isIP('fe80::1%eth0') && !isIP('::ffff:1.2.3.4')",
        "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33') && !isCIDR('10.0.0.0')",
        "ip('1.2.3.4').family() == 4 && ip('::1').family() == 6",
        "ip('127.0.0.1').isLoopback() && ip('::1').isLoopback()",
        "ip('0.0.0.0').isUnspecified() && ip('::').isUnspecified()",
        "ip('192.168.1.1').isGlobalUnicast() && !ip('255.255.255.255').isGlobalUnicast()",
        "ip('2001:db8::1').isGlobalUnicast() && !ip('fe80::1').isGlobalUnicast()",
        "ip('169.254.1.1').isLinkLocalUnicast() && ip('fe80::1').isLinkLocalUnicast()",
        "ip('224.0.0.1').isLinkLocalMulticast() && ip('ff02::1').isLinkLocalMulticast()",
        "!ip('224.0.1.1').isLinkLocalMulticast()",
        "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')",
        "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))",
        "cidr('10.0.0.0/8').containsIP('10.1.2.3')",
        "!cidr('10.0.0.0/8').containsIP('11.0.0.1')",
        "!cidr('::/0').containsIP('1.2.3.4')",
        "cidr('10.0.0.0/8').containsCIDR(cidr('10.1.0.0/16'))",
        "cidr('10.0.0.0/8').containsCIDR('10.0.0.0/8')",
        "!cidr('10.1.0.0/16').containsCIDR('10.0.0.0/8')",
        "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')",
        "cidr('10.1.2.3/8') != cidr('10.0.0.0/8')",
        "cidr('10.1.2.3/8').prefixLength() == 8",
        "cidr('10.0.0.0/8').isMask() && !cidr('10.1.2.3/8').isMask() && cidr('::/0').isMask()",
        "cidr('10.1.2.3/8').ip() == ip('10.1.2.3')",
        "string(ip('2001:0db8::0001')) == '2001:db8::1'",
        "string(cidr('2001:db8::/32')) == '2001:db8::/32'",
        "type(ip('1.2.3.4')) == net.IP",
    ]);
    all_err(&[
        "ip('1.2.3.256')",
        "ip('::ffff:1.2.3.4')",
        "cidr('1.2.3.4/08')",
        "cidr('1.2.3.4')",
        "cidr('10.0.0.0/8').containsIP('nope')",
        "cidr('10.0.0.0/8').containsCIDR('nope')",
        "ip.isCanonical('nope')",
    ]);
}

// ---------------------------------------------------------------------------
// Hierarchies.
// ---------------------------------------------------------------------------

#[test]
fn hierarchies_compare_paths() {
    all_true(&[
        "hierarchy(doc.path) == hierarchy(['org', 'eng', 'platform'])",
        "hierarchy('a/b/c', '/') == hierarchy('a.b.c')",
        "hierarchy(doc.path).size() == 3 && size(hierarchy('x')) == 1",
        "hierarchy(doc.path)[0] == 'org' && hierarchy(doc.path)[2] == 'platform'",
        "hierarchy('org').ancestorOf(hierarchy(doc.path))",
        "!hierarchy(doc.path).ancestorOf(hierarchy(doc.path))",
        "hierarchy(doc.path).descendentOf(hierarchy('org.eng'))",
        "!hierarchy('org.eng').descendentOf(hierarchy(doc.path))",
        "hierarchy('org.eng').immediateParentOf(hierarchy(doc.path))",
        "!hierarchy('org').immediateParentOf(hierarchy(doc.path))",
        "hierarchy(doc.path).immediateChildOf(hierarchy('org.eng'))",
        "!hierarchy(doc.path).immediateChildOf(hierarchy('org'))",
        "hierarchy('org.eng.data').siblingOf(hierarchy(doc.path))",
        "hierarchy(doc.path).siblingOf(hierarchy(doc.path))",
        "!hierarchy('org.ops.data').siblingOf(hierarchy(doc.path))",
        "!hierarchy('org.eng').siblingOf(hierarchy(doc.path))",
        "hierarchy('org.eng').overlaps(hierarchy(doc.path))",
        "hierarchy(doc.path).overlaps(hierarchy('org'))",
        "!hierarchy('org.ops').overlaps(hierarchy(doc.path))",
        "hierarchy('org.eng.data').commonAncestors(hierarchy(doc.path)) == hierarchy('org.eng')",
        "hierarchy(doc.path).commonAncestors(hierarchy(doc.path)) == hierarchy('org.eng')",
        "hierarchy('org').commonAncestors(hierarchy(doc.path)) == hierarchy('org')",
        "hierarchy('x.y').commonAncestors(hierarchy(doc.path)).size() == 0",
        "string(hierarchy('a:b', ':')) == 'a.b'",
        "hierarchy(doc.path) != hierarchy('org.eng')",
        "type(hierarchy('a')) == cerbos.lib.hierarchy",
    ]);
}

#[test]
fn hierarchy_errors() {
    all_err(&[
        "hierarchy(doc.path)[3]",
        "hierarchy(doc.path)[-1]",
        "hierarchy(doc.path)['a']",
        "hierarchy(['a', 1])",
        "hierarchy(1)",
        "hierarchy(doc.path).ancestorOf(doc.path)",
        "hierarchy(doc.path).overlaps('org')",
    ]);
}

// ---------------------------------------------------------------------------
// SPIFFE.
// ---------------------------------------------------------------------------

#[test]
fn spiffe_ids_and_trust_domains() {
    all_true(&[
        "spiffeID('spiffe://example.org/ns/prod/sa/api').path() == '/ns/prod/sa/api'",
        "spiffeID('spiffe://example.org').path() == ''",
        "spiffeID('spiffe://example.org/a').trustDomain() == spiffeTrustDomain('example.org')",
        "spiffeID('spiffe://example.org/a').trustDomain().name() == 'example.org'",
        "spiffeTrustDomain('example.org').id() == 'spiffe://example.org'",
        "spiffeTrustDomain('spiffe://example.org/x/y').name() == 'example.org'",
        "spiffeID('spiffe://example.org/a').isMemberOf(spiffeTrustDomain('example.org'))",
        "!spiffeID('spiffe://example.org/a').isMemberOf(spiffeTrustDomain('other.org'))",
        "spiffeID('spiffe://example.org/a') == 'spiffe://example.org/a'",
        "spiffeID('spiffe://example.org/a') == spiffeID('spiffe://example.org/a')",
        "spiffeTrustDomain('example.org') == 'example.org'",
        "string(spiffeID('spiffe://example.org/a')) == 'spiffe://example.org/a'",
        "string(spiffeTrustDomain('example.org')) == 'example.org'",
    ]);
}

#[test]
fn spiffe_matchers() {
    all_true(&[
        "spiffeMatchAny().matchesID('spiffe://any.org/x')",
        "spiffeMatchExact('spiffe://example.org/a').matchesID(spiffeID('spiffe://example.org/a'))",
        "!spiffeMatchExact(spiffeID('spiffe://example.org/a')).matchesID('spiffe://example.org/b')",
        "spiffeMatchOneOf(['spiffe://example.org/a', 'spiffe://example.org/b']).matchesID('spiffe://example.org/b')",
        "!spiffeMatchOneOf([spiffeID('spiffe://example.org/a')]).matchesID('spiffe://example.org/b')",
        "!spiffeMatchOneOf([]).matchesID('spiffe://example.org/b')",
        "spiffeMatchTrustDomain('example.org').matchesID('spiffe://example.org/any/path')",
        "!spiffeMatchTrustDomain(spiffeTrustDomain('example.org')).matchesID('spiffe://example.com/a')",
    ]);
}

#[test]
fn spiffe_errors() {
    all_err(&[
        "spiffeID('')",
        "spiffeID('http://example.org/a')",
        "spiffeID('spiffe://Example.org/a')",
        "spiffeID('spiffe:///a')",
        "spiffeID('spiffe://example.org/')",
        "spiffeID('spiffe://example.org//a')",
        "spiffeID('spiffe://example.org/a/../b')",
        "spiffeID('spiffe://example.org/a b')",
        "spiffeTrustDomain('')",
        "spiffeTrustDomain('Example.org')",
        "spiffeMatchExact('not an id')",
        "spiffeMatchOneOf(['spiffe://example.org/a', 'nope'])",
        "spiffeMatchOneOf([1])",
        "spiffeMatchAny().matchesID('nope')",
        "spiffeTrustDomain('example.org') < 'Bad Domain'",
    ]);
}

#[test]
fn spiffe_trust_domains_order_as_cerbos_orders_them() {
    // Cerbos's comparison is reversed: it compares the right-hand side to
    // the left-hand one.
    all_true(&[
        "spiffeTrustDomain('b.org') < spiffeTrustDomain('a.org')",
        "!(spiffeTrustDomain('a.org') < spiffeTrustDomain('b.org'))",
        "spiffeTrustDomain('a.org') >= 'a.org'",
    ]);
}

// ---------------------------------------------------------------------------
// Strings, encoders, JSON and regex.
// ---------------------------------------------------------------------------

#[test]
fn strings_extension() {
    all_true(&[
        "doc.name.charAt(0) == 'A' && doc.name.charAt(3) == ''",
        "'banana'.indexOf('an') == 1 && 'banana'.indexOf('an', 2) == 3 && 'banana'.indexOf('x') == -1",
        "'banana'.lastIndexOf('an') == 3 && 'banana'.lastIndexOf('an', 2) == 1",
        "'MiXeD'.lowerAscii() == 'mixed' && 'MiXeD'.upperAscii() == 'MIXED'",
        "'a-b-c'.replace('-', '+') == 'a+b+c' && 'a-b-c'.replace('-', '+', 1) == 'a+b-c'",
        "'a,b,c'.split(',') == ['a', 'b', 'c'] && 'a,b,c'.split(',', 2) == ['a', 'b,c']",
        "'a,b,c'.split(',', 0) == []",
        "'hello'.substring(1) == 'ello' && 'hello'.substring(1, 3) == 'el'",
        "'\\t padded \\n'.trim() == 'padded'",
        "['x', 'y'].join() == 'xy' && ['x', 'y'].join('-') == 'x-y'",
        "'%s is %d years'.format(['Ada', 36]) == 'Ada is 36 years'",
        "strings.quote('say \"hi\"') == '\"say \\\\\"hi\\\\\"\"'",
        "'stressed'.reverse() == 'desserts'",
        "'Ada'.contains('d') && 'Ada'.startsWith('A') && 'Ada'.endsWith('a')",
        "'Ada'.matches('^A.a$') && size('héllo') == 5",
    ]);
    all_err(&[
        "'abc'.charAt(4)",
        "'abc'.charAt(-1)",
        "'abc'.substring(2, 1)",
        "'abc'.substring(5)",
        "'abc'.indexOf('a', 9)",
        "[1, 2].join()",
        "'abc'.matches('(')",
    ]);
}

#[test]
fn encoders() {
    all_true(&[
        "base64.encode(b'hello') == 'aGVsbG8='",
        "base64.encode(bytes(doc.name)) == 'QWRh'",
        "base64.decode('aGVsbG8=') == b'hello'",
        "string(base64.decode('QWRh')) == doc.name",
    ]);
    all_err(&["base64.decode('***')", "base64.encode(1)"]);
}

#[test]
fn json_encode_writes_compact_sorted_json() {
    all_true(&[
        r#"json.encode(doc.nested) == '{"inner":{"flag":true}}'"#,
        r#"json.encode({'b': 1, 'a': [1.5, 'x', null]}) == '{"a":[1.5,"x",null],"b":1}'"#,
        r#"json.encode(doc.nums) == '[10,20,30]'"#,
        r#"json.encode('<a & b>') == '"\\u003ca \\u0026 b\\u003e"'"#,
        r#"json.encode('line\nbreak "quoted"') == '"line\\nbreak \\"quoted\\""'"#,
        r#"json.encode(9007199254740993) == '"9007199254740993"'"#,
        r#"json.encode(1e21) == '1e+21' && json.encode(0.0000001) == '1e-7'"#,
        r#"json.encode(timestamp('2023-01-02T03:04:05.5+01:00')) == '"2023-01-02T02:04:05.500Z"'"#,
        r#"json.encode(duration('90s')) == '"90s"'"#,
        r#"json.encode(b'hi') == '"aGk="'"#,
    ]);
    all_err(&[
        "json.encode({1: 'a'})",
        "json.encode(hierarchy('a'))",
        "json.encode(1.0 / 0.0)",
    ]);
}

#[test]
fn regex_extension() {
    all_true(&[
        "regex.replace('hello world hello', 'hello', 'hi') == 'hi world hi'",
        "regex.replace('banana', 'a', 'x', 0) == 'banana'",
        "regex.replace('banana', 'a', 'x', 2) == 'bxnxna'",
        "regex.replace('banana', 'a', 'x', -3) == 'bxnxnx'",
        "regex.replace('foo bar', '(fo)o (ba)r', '\\\\2 \\\\1') == 'ba fo'",
        "regex.replace('a.b', '\\\\.', '\\\\\\\\') == 'a\\\\b'",
        "regex.replace('abc', 'x', '\\\\9') == 'abc'",
        "regex.extract('item-A, item-B', 'item-(\\\\w+)') == optional.of('A')",
        "regex.extract('HELLO', 'hello') == optional.none()",
        "regex.extract('abc', 'b') == optional.of('b')",
        "regex.extract('ac', 'a(b?)c') == optional.none()",
        "!regex.extract('HELLO', 'hello').hasValue()",
        "regex.extractAll('id:123, id:456', 'id:\\\\d+') == ['id:123', 'id:456']",
        "regex.extractAll('id:123, id:456', 'id:(\\\\d+)') == ['123', '456']",
        "regex.extractAll('id:123', 'assa') == []",
    ]);
    all_err(&[
        "regex.replace('test', '(.)', '\\\\2')",
        "regex.replace('test', '(', 'x')",
        "regex.replace('test', 't', 'x\\\\')",
        "regex.replace('test', 't', '\\\\x')",
        "regex.extract('user@host', '(.*)@([^.]*)')",
        "regex.extractAll('user@host', '(.*)@([^.]*)')",
        "regex.extract('a', '[')",
        "regex.replace(1, 'a', 'b')",
    ]);
}

// ---------------------------------------------------------------------------
// Math and lists.
// ---------------------------------------------------------------------------

#[test]
fn math_extension() {
    all_true(&[
        "math.greatest(1, 5, 3) == 5 && math.least([4.5, -1.0]) == -1.0",
        "math.greatest(doc.nums) == 30.0",
        "math.ceil(1.2) == 2.0 && math.floor(-1.2) == -2.0",
        "math.round(2.5) == 3.0 && math.trunc(-1.7) == -1.0",
        "math.abs(-4) == 4 && math.sign(-2.5) == -1.0",
        "math.isNaN(0.0 / 0.0) && math.isInf(1.0 / 0.0) && math.isFinite(1.0)",
        "math.bitAnd(6, 3) == 2 && math.bitOr(1u, 2u) == 3u && math.bitXor(5, 1) == 4",
        "math.bitNot(0) == -1 && math.bitShiftLeft(1, 4) == 16 && math.bitShiftRight(16, 4) == 1",
        "math.sqrt(81) == 9.0",
    ]);
    all_err(&[
        "math.abs(-9223372036854775807 - 1)",
        "math.bitShiftLeft(1, -1)",
    ]);
}

#[test]
fn lists_extension() {
    all_true(&[
        "[3, 1, 2].sort() == [1, 2, 3] && doc.tags.sort() == ['blue', 'green', 'red']",
        "[{'n': 2}, {'n': 1}].sortBy(e, e.n) == [{'n': 1}, {'n': 2}]",
        "[1, 2, 2, 1].distinct() == [1, 2]",
        "[1, [2, [3]]].flatten() == [1, 2, [3]] && [1, [2, [3]]].flatten(2) == [1, 2, 3]",
        "lists.range(4) == [0, 1, 2, 3] && lists.range(0) == []",
        "doc.tags.reverse() == ['blue', 'green', 'red']",
        "doc.tags.slice(1, 3) == ['green', 'blue']",
        "doc.tags.first() == optional.of('red') && doc.tags.last() == optional.of('blue')",
        "[].first() == optional.none() && !([].last().hasValue())",
        "[].last().orValue('fallback') == 'fallback'",
        "optional.unwrap([optional.of(1), optional.none(), optional.of(3)]) == [1, 3]",
        "[optional.none(), optional.of('x')].unwrapOpt() == ['x']",
    ]);
    all_err(&[
        "[1, 'a'].sort()",
        "doc.tags.slice(2, 1)",
        "doc.tags.slice(0, 9)",
        "[1].flatten(-1)",
        "lists.range(-1)",
        "[1].unwrapOpt()",
    ]);
}

#[test]
fn optional_values() {
    all_true(&[
        "optional.of(1).hasValue() && optional.of(1).value() == 1",
        "optional.none().orValue(2) == 2",
        "optional.ofNonZeroValue('') == optional.none()",
        "doc.?missing.orValue('dflt') == 'dflt'",
        "doc.?name.value() == 'Ada'",
        "optional.none().or(optional.of(3)) == optional.of(3)",
    ]);
    all_err(&["optional.none().value()"]);
}

#[test]
fn id_returns_its_argument() {
    all_true(&[
        "id(doc.name) == 'Ada'",
        "id([1, 2]) == [1, 2]",
        "id(null) == null",
    ]);
}

// ---------------------------------------------------------------------------
// Macros: cel.bind and the comprehensions.
// ---------------------------------------------------------------------------

#[test]
fn cel_bind_binds_a_local_name() {
    all_true(&[
        "cel.bind(x, 2, x * x) == 4",
        "cel.bind(a, 'hello', cel.bind(b, 'world', a + b + b + a)) == 'helloworldworldhello'",
        "cel.bind(allowed, ['red', 'pink'], doc.tags.exists(t, t in allowed))",
        // A binding shadows a variable of the same name.
        "cel.bind(doc, 1, doc + 1) == 2",
        "cel.bind(x, doc.name, x) == 'Ada'",
    ]);
    // `bind` on anything but `cel` is no macro, and no function either.
    all_err(&["doc.bind(x, 1, x)"]);
}

#[test]
fn single_variable_comprehensions() {
    all_true(&[
        "doc.tags.all(t, size(t) >= 3)",
        "doc.tags.exists(t, t == 'red')",
        "doc.tags.exists_one(t, t.startsWith('g')) && doc.tags.existsOne(t, t == 'blue')",
        "doc.tags.map(t, t.upperAscii()) == ['RED', 'GREEN', 'BLUE']",
        "doc.nums.map(n, n > 10.0, n * 2.0) == [40.0, 60.0]",
        "doc.tags.filter(t, t != 'green') == ['red', 'blue']",
        "doc.nested.all(k, k == 'inner')",
        // An error is absorbed by a later decisive element, as in cel-go.
        "[0, 1].exists(x, 1 / x == 1)",
        "![0, 1].all(x, x == 5 && 1 / x == 1)",
    ]);
    all_err(&["[0, 1].all(x, 1 / x == 1)", "doc.name.all(c, true)"]);
}

#[test]
fn two_variable_quantifiers() {
    all_true(&[
        "doc.tags.all(i, t, i < 3 && size(t) > 2)",
        "[5, 6].all(i, v, v == i + 5)",
        "{'a': 1, 'b': 2}.all(k, v, k in ['a', 'b'] && v > 0)",
        "!{'a': 1, 'b': 2}.all(k, v, v > 1)",
        "doc.tags.exists(i, t, i == 2 && t == 'blue')",
        "!doc.tags.exists(i, t, i == 2 && t == 'red')",
        "{'x': 'y'}.exists(k, v, k + v == 'xy')",
        "doc.tags.existsOne(i, t, i == 0 || t == 'green') == false",
        "doc.tags.existsOne(i, t, t.startsWith('b'))",
        "doc.tags.exists_one(i, t, i == 1)",
        "{'i': 0, 'j': 1}.existsOne(k, v, v == 1)",
        "doc.nested.all(k, v, has(v.flag))",
        // Nested comprehensions see the outer variables.
        "{'a': [1, 2], 'b': [3]}.all(k, vs, vs.all(i, v, k == 'a' || v == 3))",
        "[[1, 2], [3]].exists(i, row, row.exists(j, x, i == 1 && j == 0 && x == 3))",
        // The error of one entry is absorbed by a decisive other.
        "{'a': 0, 'b': 1}.exists(k, v, 1 / v == 1)",
    ]);
    all_err(&[
        "[0].all(i, v, 1 / v == 1)",
        "doc.name.all(i, v, true)",
        "5.exists(i, v, true)",
    ]);
}

#[test]
fn two_variable_transforms() {
    all_true(&[
        "doc.tags.transformList(i, t, string(i) + t) == ['0red', '1green', '2blue']",
        "doc.tags.transformList(i, t, i > 0, t) == ['green', 'blue']",
        "{'a': 1}.transformList(k, v, k + string(v)) == ['a1']",
        "[].transformList(i, v, v) == []",
        "doc.tags.transformMap(i, t, size(t)) == {0: 3, 1: 5, 2: 4}",
        "doc.tags.transformMap(i, t, i != 1, t) == {0: 'red', 2: 'blue'}",
        "{'a': 1, 'b': 2}.transformMap(k, v, v * 10) == {'a': 10, 'b': 20}",
        "{'a': 1, 'b': 2}.transformMap(k, v, k == 'b', v) == {'b': 2}",
        "doc.tags.transformMapEntry(i, t, {t: i}) == {'red': 0, 'green': 1, 'blue': 2}",
        "doc.tags.transformMapEntry(i, t, i < 2, {t: i}) == {'red': 0, 'green': 1}",
        "{'a': 'x', 'b': 'y'}.transformMapEntry(k, v, {v: k, k: v}) == {'x': 'a', 'y': 'b', 'a': 'x', 'b': 'y'}",
        // JSON numbers (doubles) holding whole numbers work as keys, as in cel-go.
        "doc.nums.transformMapEntry(i, n, {n: i}) == {10: 0, 20: 1, 30: 2}",
        "doc.nums.transformMapEntry(i, n, i == 0 ? {n: 'first'} : {}) == {10: 'first'}",
        "doc.nested.transformMap(k, v, v.flag) == {'inner': true}",
        "doc.nums.transformMap(i, n, {n: i}) == {0: {10: 0}, 1: {20: 1}, 2: {30: 2}}",
        "doc.nums.exists(i, n, {n: i} == {20: 1})",
    ]);
    all_err(&[
        // Two entries produce the same key.
        "['a', 'b'].transformMapEntry(i, v, {'same': v})",
        "doc.nums.transformMapEntry(i, n, {n / 3.0: i})",
        "doc.tags.transformMapEntry(i, t, [t])",
        "doc.tags.transformList(i, t, i / 0)",
        "doc.name.transformMap(k, v, v)",
    ]);
}

#[test]
fn helper_names_cannot_be_written() {
    for source in ["@entries([1])", "@it", "@now", "x.@entries()"] {
        assert!(compile(source).is_err(), "{source}");
    }
}

// ---------------------------------------------------------------------------
// JSON conversions.
// ---------------------------------------------------------------------------

#[test]
fn json_to_val_borrows_strings() {
    let data = json!({"s": "borrowed text"});
    let val = json_to_val(&data);
    let map = val
        .downcast_ref::<cel::common::types::CelMap>()
        .expect("a map");
    let key = cel::common::types::CelMapKey::from("s");
    let s = map
        .inner()
        .get(&key)
        .and_then(|v| v.downcast_ref::<cel::common::types::CelString>())
        .expect("a string");
    let serde_json::Value::String(original) = &data["s"] else {
        panic!("not a string")
    };
    assert!(
        std::ptr::eq(s.inner(), original.as_str()),
        "copied, not borrowed"
    );
}

#[test]
fn json_round_trips() {
    let data = json!({
        "null": null,
        "bool": true,
        "int": 42,
        "neg": -7,
        "float": 2.5,
        "big": 1e300,
        "text": "héllo",
        "list": [1, "two", [3.5], {"k": false}],
        "empty": {}
    });
    assert_eq!(val_to_json(json_to_val(&data).as_ref()), Ok(data.clone()));
    assert_eq!(val_to_json(json_to_static_val(&data).as_ref()), Ok(data));
}

#[test]
fn json_to_static_val_outlives_the_json() {
    let val = {
        let data = json!(["a", {"b": 1}]);
        json_to_static_val(&data)
    };
    assert_eq!(val_to_json(val.as_ref()), Ok(json!(["a", {"b": 1}])));
}

/// Evaluates `expr` and converts the result to JSON.
fn eval_json(expr: &str) -> Result<serde_json::Value, CelxError> {
    let program = compile(expr)?;
    let data = doc();
    let mut ctx = Context::with_env(environment());
    ctx.add_variable_as_val("doc", json_to_val(&data));
    ctx.add_variable_as_val(NOW_VARIABLE, timestamp_val(test_now()));
    let value = Value::resolve_val(program.expression(), &ctx).map_err(|e| CelxError::Convert {
        type_name: "?".into(),
        reason: e.to_string(),
    })?;
    val_to_json(value.as_ref())
}

#[test]
fn val_to_json_renders_as_cerbos_does() {
    let cases = [
        ("1", json!(1)),
        ("-1", json!(-1)),
        ("9007199254740991", json!(9007199254740991i64)),
        ("9007199254740992", json!("9007199254740992")),
        ("-9223372036854775807", json!("-9223372036854775807")),
        ("7u", json!(7)),
        ("18446744073709551615u", json!("18446744073709551615")),
        ("2.0", json!(2)),
        ("0.25", json!(0.25)),
        ("'text'", json!("text")),
        ("b'\\x00\\xff'", json!("AP8=")),
        ("null", json!(null)),
        ("[true, [null]]", json!([true, [null]])),
        ("{'a': {'b': 1.5}}", json!({"a": {"b": 1.5}})),
        ("now()", json!("2023-06-15T18:30:45.250Z")),
        (
            "timestamp('2023-01-01T00:00:00Z')",
            json!("2023-01-01T00:00:00Z"),
        ),
        (
            "timestamp('2023-01-01T00:00:00.000001Z')",
            json!("2023-01-01T00:00:00.000001Z"),
        ),
        (
            "timestamp('2023-01-01T00:00:00.123456789+02:00')",
            json!("2022-12-31T22:00:00.123456789Z"),
        ),
        ("duration('24h')", json!("86400s")),
        ("duration('1.5s')", json!("1.500s")),
        ("duration('-90ms')", json!("-0.090s")),
        ("duration('1us')", json!("0.000001s")),
        ("doc.nested", json!({"inner": {"flag": true}})),
        ("doc.tags.map(t, size(t))", json!([3, 5, 4])),
    ];
    for (expr, want) in cases {
        assert_eq!(eval_json(expr), Ok(want), "{expr}");
    }
}

#[test]
fn val_to_json_rejects_what_has_no_json_form() {
    for expr in [
        "{1: 'a'}",
        "{true: 1}",
        "[{'a': {2: 'b'}}]",
        "1.0 / 0.0",
        "0.0 / 0.0",
        "int",
        "optional.of(1)",
        "hierarchy('a.b')",
        "ip('1.2.3.4')",
        "spiffeID('spiffe://example.org/a')",
    ] {
        match eval_json(expr) {
            Err(CelxError::Convert { type_name, .. }) => assert_ne!(type_name, "?", "{expr}"),
            other => panic!("{expr}: expected a conversion error, got {other:?}"),
        }
    }
}
