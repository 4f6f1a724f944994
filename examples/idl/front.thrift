// The front service of examples/handler_calls_service.rs: its handler calls the
// demo service's whoami with the call's own context.
include "../../src/bin/ringsoa-demo/demo.thrift"

service Front {
  /**
   * Calls Demo.whoami on the back end with this call's context and returns what
   * the back end saw, plus this call's own "front.request_id", "front.seq" (its
   * rpc id) and "front.caller".
   */
  map<string, string> trace()
}
