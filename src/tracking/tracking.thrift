/*
 * The Eleme tracking extension, as thriftpy2 0.7.1's contrib/tracking speaks it.
 * Sent as bare structs (not messages): the handshake's arguments and reply, the
 * request header before every call at version >= 1, and the response header before
 * every reply at version 2.
 */

struct RequestHeader {
  1: string request_id,
  2: string seq,
  3: map<string, string> meta,
}

struct ResponseHeader {
  1: map<string, string> meta,
}

struct UpgradeArgs {
  1: string app_id,
  2: i32 version,
}

struct UpgradeReply {
  1: i32 version,
}
