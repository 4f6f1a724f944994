/*
 * The part of ../../../src/bin/ringsoa-demo/demo.thrift that the peer servers
 * implement: the same service name and the same two methods, so the bytes on the
 * wire are the demo contract's.
 */
namespace rs demo

service Demo {
  void ping(),
  string echo(1: string msg),
}
