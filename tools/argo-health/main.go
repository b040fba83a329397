// argo-health runs an Argo CD resource health check (a Lua script) against
// objects given as JSON, the way Argo CD's util/lua does: a fresh gopher-lua VM
// per object with only the package, base and table libraries (what a check from
// argocd-cm gets without useOpenLibs; no string, math or io), a one-second
// timeout, the object as the global table `obj`, and the returned table read as
// {status, message}; a status outside Argo CD's set reads as Unknown. (Argo CD
// also loads a restricted os library; Usher's checks do not use it, so it is left
// out here and a check that called it would fail its test.) Built and cached by
// test/gitops/checks.ts; never imported by Usher itself.
//
//	argo-health [--open-libs] health.lua [file.json ...]   # no file, or "-": standard input
//
// Each input holds one object, a JSON array of objects, or a List (items). It
// prints one JSON array, an entry per object in input order:
//
//	[{"kind":"UserInvitation","namespace":"acme","name":"jane","status":"Healthy","message":"..."}]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

// The health statuses Argo CD accepts from a script (gitops-engine's health.HealthStatusCode).
var validStatus = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

func main() {
	args := os.Args[1:]
	openLibs := false
	if len(args) > 0 && args[0] == "--open-libs" {
		openLibs, args = true, args[1:]
	}
	if len(args) == 0 {
		fail("usage: argo-health [--open-libs] health.lua [file.json ...]")
	}
	script, err := os.ReadFile(args[0])
	if err != nil {
		fail("%v", err)
	}
	inputs := args[1:]
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
			meta, _ := obj["metadata"].(map[string]any)
			r := result{Kind: str(obj["kind"]), Namespace: str(meta["namespace"]), Name: str(meta["name"])}
			r.Status, r.Message, err = health(string(script), obj, openLibs)
			if err != nil {
				fail("%s %s/%s: %v", r.Kind, r.Namespace, r.Name, err)
			}
			results = append(results, r)
		}
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(results); err != nil {
		fail("%v", err)
	}
}

// health is Argo CD's VM.ExecuteHealthLua: run the script with obj set, read the table it returns.
func health(script string, obj map[string]any, openLibs bool) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	returned := l.Get(-1)
	hs, ok := returned.(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("expect table output from Lua script, not %s", returned.Type().String())
	}
	status, message := luaString(hs.RawGetString("status")), luaString(hs.RawGetString("message"))
	if !validStatus[status] {
		return "Unknown", "Lua returned an invalid health status", nil
	}
	return status, message, nil
}

// decodeValue is Argo CD's conversion of the object into Lua values (util/lua's decodeValue).
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func luaString(v lua.LValue) string {
	if v == lua.LNil {
		return ""
	}
	return v.String()
}

func str(v any) string {
	s, _ := v.(string)
	return s
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
	var decoded any
	if err := json.Unmarshal(data, &decoded); err != nil {
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
	fmt.Fprintf(os.Stderr, "argo-health: "+format+"\n", args...)
	os.Exit(1)
}
