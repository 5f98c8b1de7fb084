// Package archtest holds one test: the import-direction rule of the design
// (cli → server → workspace/board → agent/memory → lower packages), checked
// on every package so a wrong-way import fails CI, as restic's depguard rule
// does.
package archtest
