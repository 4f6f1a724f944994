// Apache's Go THeader client with a chosen payload protocol and transforms (the
// cross test's Go testclient sends binary inside THeader, uncompressed, with no
// headers). Calls ThriftTest methods on 127.0.0.1:PORT and checks each answer, and
// that a header pair it sends comes back in the reply's header (ringsoa's cross-test
// server echoes `echo-` pairs); exit 1 on any failure.
//
// Built by tools/apache/fetch.sh inside Apache's source (test/go/src/bin), beside
// Apache's testclient. `-transport framed` puts the header transport over
// TFramedTransport (each header frame inside a frame), as Apache's testclient does.
// Usage: ringsoa_header_client -port PORT -protocol binary|compact
// [-transport buffered|framed] [-zlib]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/apache/thrift/test/go/src/gen/thrifttest"
)

func main() {
	port := flag.Int("port", 9090, "the server's port on 127.0.0.1")
	protocol := flag.String("protocol", "binary", "the payload's protocol: binary or compact")
	transport := flag.String("transport", "buffered", "buffered, or framed: inside TFramedTransport")
	zlib := flag.Bool("zlib", false, "compress every request with the zlib transform")
	flag.Parse()
	id := thrift.THeaderProtocolBinary
	if *protocol == "compact" {
		id = thrift.THeaderProtocolCompact
	}
	cfg := &thrift.TConfiguration{THeaderProtocolID: &id}
	sock := thrift.NewTSocketConf(net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), cfg)
	if err := sock.Open(); err != nil {
		fmt.Println("FAIL connect:", err)
		os.Exit(1)
	}
	defer sock.Close()
	var trans thrift.TTransport = sock
	if *transport == "framed" {
		trans = thrift.NewTFramedTransportConf(sock, cfg)
	}
	proto := thrift.NewTHeaderProtocolConf(trans, cfg)
	if *zlib {
		if err := proto.AddTransform(thrift.TransformZlib); err != nil {
			fmt.Println("FAIL zlib:", err)
			os.Exit(1)
		}
	}
	client := thrifttest.NewThriftTestClient(thrift.NewTStandardClient(proto, proto))
	failed := 0
	check := func(name string, ok bool) {
		if ok {
			fmt.Println("ok  ", name)
		} else {
			fmt.Println("FAIL", name)
			failed++
		}
	}
	ctx := thrift.SetHeader(context.Background(), "echo-from", "apache-go "+*protocol)
	ctx = thrift.SetWriteHeaderList(ctx, []string{"echo-from"})
	s, err := client.TestString(ctx, "héader "+*protocol)
	check("testString", err == nil && s == "héader "+*protocol)
	check("the header pair came back", proto.GetReadHeaders()["echo-from"] == "apache-go "+*protocol)
	x := &thrifttest.Xtruct{StringThing: "Zero", ByteThing: 1, I32Thing: -3, I64Thing: -5}
	got, err := client.TestStruct(ctx, x)
	check("testStruct", err == nil && got.Equals(x))
	mm, err := client.TestMapMap(ctx, 1)
	check("testMapMap", err == nil && len(mm[4]) == 4 && mm[4][3] == 3)
	err = client.TestException(ctx, "Xception")
	xe, isX := err.(*thrifttest.Xception)
	check("testException", isX && xe.ErrorCode == 1001)
	err = client.TestOneway(ctx, 0)
	check("testOneway", err == nil)
	i, err := client.TestI32(ctx, -7)
	check("testI32 after testOneway", err == nil && i == -7)
	check("the reply came in the payload's protocol", proto.Transport().(*thrift.THeaderTransport).Protocol() == id)
	zlibTag := ""
	if *zlib {
		zlibTag = " zlib"
	}
	fmt.Printf("header_client.go %s %s%s: %d failed\n", *protocol, *transport, zlibTag, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
