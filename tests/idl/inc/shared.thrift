// Included through the include dirs by codegen.thrift.
namespace rs shared

enum Level {
  LOW,
  MID = 0x5,
  HIGH,
}

const Level DEFAULT_LEVEL = Level.MID

struct Point {
  1: required i32 x,
  2: required i32 y,
}

service Base {
  /** Inherited by Derived. */
  string hello(1: string who),
}
