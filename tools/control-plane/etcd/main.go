// Command etcd is the etcd server that Usher's test control plane stores its
// data in: upstream's own entry point, built from the Go module proxy because
// etcd's repository uses relative replaces that `go install` cannot follow.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
