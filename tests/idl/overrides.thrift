// Compiled twice by the build script, with the default types and with the type
// overrides (binary as Vec<u8>, string as Text, sets and maps as Hash*); tests/codegen.rs checks
// both write the same bytes.

const binary TAG = "t\t"
const set<i32> PRIMES = [2, 3, 5]
const map<string, binary> NAMED = {"a": "x"}

struct Bag {
  1: required binary blob
  2: required set<i32> ids
  3: required set<set<i32>> groups
  4: required map<string, binary> named
  5: required map<set<i32>, i32> by_group
  6: required map<double, i32> by_score
  7: required list<binary> blobs
  8: optional map<i64, list<string>> lists
  9: required string name
  10: string motto = "keep going"
}

service Bags {
  Bag swap(1: Bag bag, 2: set<string> keys)
}
