// kstatus computes what Flux (and kpt, Config Sync) make of an object's
// health: the real sigs.k8s.io/cli-utils kstatus library, status.Compute, on
// objects given as JSON. Built and cached by test/gitops/checks.ts like the
// control-plane binaries; never imported by Usher itself.
//
//	kstatus [file.json ...]   # no file, or "-": read standard input
//
// Each input holds one object, a JSON array of objects, or a List (items). It
// prints one JSON array, an entry per object in input order:
//
//	[{"kind":"UserInvitation","namespace":"acme","name":"jane","status":"Current","message":"Resource is current"}]
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	inputs := os.Args[1:]
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	results := []result{}
	for _, input := range inputs {
		objects, err := read(input)
		if err != nil {
			fail("%s: %v", input, err)
		}
		for _, obj := range objects {
			u := &unstructured.Unstructured{Object: obj}
			res, err := status.Compute(u)
			if err != nil {
				fail("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			results = append(results, result{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Status: res.Status.String(), Message: res.Message})
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(results); err != nil {
		fail("%v", err)
	}
}

// read returns the objects in one input: an object, an array of objects, or a List.
func read(input string) ([]map[string]any, error) {
	var data []byte
	var err error
	if input == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(input)
	}
	if err != nil {
		return nil, err
	}
	// Numbers as the API machinery decodes them (int64 where integral), which
	// status.Compute's accessors expect (observedGeneration, say).
	var decoded any
	if err := utiljson.Unmarshal(data, &decoded); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	var items []any
	switch v := decoded.(type) {
	case []any:
		items = v
	case map[string]any:
		kind, _ := v["kind"].(string)
		if list, ok := v["items"].([]any); ok && strings.HasSuffix(kind, "List") {
			items = list
		} else {
			items = []any{v}
		}
	default:
		return nil, fmt.Errorf("not a JSON object, array or List")
	}
	objects := make([]map[string]any, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object", i)
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
