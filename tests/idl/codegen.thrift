/*
 * Every construct the code generator must handle: includes, typedefs, constants of
 * every kind, unions, recursion, implicit field ids, keywords as names, extends.
 */
include "shared.thrift"
cpp_include "<vector>"
namespace rs codegen
namespace * codegen.star

typedef i64 Timestamp (unit = "ms")
typedef list<shared.Point> Path

const i8 TINY = -0x10
const double RATIO = 2.5e-3
const string GREETING = "hello \"world\""
const binary MAGIC = "a\tb\\"
const list<i32> PRIMES = [2, 3, 5, 7]
const set<string> WORDS = ["a", "b"]
const map<string, shared.Level> LEVELS = {"low": shared.Level.LOW, "high": shared.Level.HIGH}
const shared.Point ORIGIN = {"x": 0, "y": 0}
const shared.Level COPY = shared.DEFAULT_LEVEL
const bool YES = true

/** A tree with implicit ids and recursion through a list and an option. */
struct Tree {
  string label = "root"
  list<Tree> kids
  optional Tree parent
}

/** Names that are Rust keywords. */
struct Keywords {
  1: i32 type,
  2: string match,
  3: bool self,
  4: optional i64 fn;
}

union Shape {
  1: shared.Point point,
  2: Path path,
  3: double radius,
}

struct Everything {
  1: required Timestamp at,
  2: optional Shape shape,
  3: map<double, string> by_score,
  4: set<shared.Point> points,
  5: list<map<string, list<i16>>> deep,
  6: shared.Level level = shared.Level.HIGH,
  7: Keywords kw,
  8: uuid id,
  9: optional list<bool> bits = [true, false],
  10: shared.Point corner = {"x": 1, "y": 2},
}

exception Oops {
  1: string why,
}

exception Other {
  1: i32 code,
}

service Derived extends shared.Base {
  Everything get(1: i64 id, 2: optional string hint) throws (1: Oops oops, 2: Other other),
  oneway void poke(),
  void type(1: Keywords in),
}

/** Arguments named as a pattern reads something else (the prelude's variants, a
 *  constant), as the context's parameter, and as that name made safe. */
service Shadows {
  i64 shadow(1: i32 Some, 2: i32 None, 3: i32 Ok, 4: i32 Err, 5: i32 cx, 6: i32 cx_, 7: i32 TRACE_ID),
  /** Named as the client's own `new` and `channel`. */
  i32 new(1: i32 channel),
  i32 channel(),
}

/** Values named as the enum type's own items. */
enum Clashing {
  KEYS = 1,
  VALUES = 2,
  name = 3,
  from_name = 4,
}

/** Apache Thrift 0.19's uuid, as a constant and a default. */
const uuid TRACE_ID = "00112233-4455-6677-8899-aabbccddeeff"

/** Corners of Apache's grammar: a C++ reference marker on a recursive field, empty
 *  `{}`/`[]` defaults for any collection, a union literal, a uuid default. */
struct Corners {
  1: Corners & next
  2: set<binary> tags = {}
  3: map<string, i32> counts = []
  4: optional Shape shape = {"radius": 1.5}
  5: uuid id = "{00112233-4455-6677-8899-AABBCCDDEEFF}"
}
