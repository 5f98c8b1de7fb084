// Package testutil holds test plumbing shared by every package: helpers that
// skip a test when the machine lacks something it needs (root, FUSE, user
// namespaces, a binary on PATH), except under BULKHEAD_TEST_NO_SKIP=1, where a
// missing requirement fails the test instead. CI sets that variable, so a green
// CI run means every such test really ran.
//
// Nothing here is used outside _test.go files.
package testutil
