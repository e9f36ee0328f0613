package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/liveupdate/luo/internal/cli"
	"github.com/liveupdate/luo/internal/control"
)

// The JSON of luoctl --json, checked against the interface description:
// docs/luoctl-json.md documents it with an example per command, this file
// holds the examples to the IDL, and luoctl_json_linux_test.go holds
// luoctl's output from a real luod to it.

// jsonDoc is the documentation of luoctl --json.
const jsonDoc = "../../docs/luoctl-json.md"

// A jsonShape is what luoctl --json prints for a command: a reply of
// method, an array of them, one per line, or nothing.
type jsonShape struct {
	form   string // reply, replies, lines, none
	method string // io.luo.Manager's, or io.luo.luoctl's (luoctlMethods)
}

// shapeOf returns the shape of the output of luoctl with args, and the
// command ("status UNIT", "update plan").
func shapeOf(args []string) (string, jsonShape, bool) {
	var words []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			words = append(words, a)
		}
	}
	if len(words) == 0 {
		return "", jsonShape{}, false
	}
	cmd := words[0]
	if (cmd == "update" || cmd == "fleet") && len(words) > 1 {
		cmd += " " + words[1]
	}
	if cmd == "status" && len(words) > 1 {
		cmd = "status UNIT"
	}
	s, ok := jsonShapes[cmd]
	return cmd, s, ok
}

// jsonShapes is the shape of each command's --json.
var jsonShapes = map[string]jsonShape{
	"status":         {"reply", control.MethodGetManager},
	"status UNIT":    {"replies", control.MethodGetUnit},
	"list":           {"reply", control.MethodListUnits},
	"start":          {"replies", control.MethodStartUnit},
	"stop":           {"replies", control.MethodStopUnit},
	"restart":        {"replies", control.MethodRestartUnit},
	"fdstore":        {"replies", control.MethodDumpFDStore},
	"clean":          {"replies", control.MethodCleanUnit},
	"reset-failed":   {"replies", control.MethodResetFailed},
	"daemon-reload":  {"reply", control.MethodReload},
	"daemon-reexec":  {"reply", control.MethodGetManager},
	"sessions":       {"reply", control.MethodListSessions},
	"logs":           {"reply", control.MethodGetLogs}, // with -f, lines
	"poweroff":       {"none", control.MethodPowerOff},
	"reboot":         {"none", control.MethodReboot},
	"update plan":    {"reply", control.MethodPlanUpdate},
	"update run":     {"lines", control.MethodRunUpdate},
	"update report":  {"reply", control.MethodGetUpdateReport},
	"update stage":   {"reply", control.MethodStageUpdate},
	"update status":  {"reply", control.MethodGetStagedUpdate},
	"update unstage": {"reply", control.MethodUnstageUpdate},
	"version":        {"reply", "Version"},
	"update needed":  {"reply", "Needed"},
	"fleet status":   {"reply", control.MethodGetFleet},
	"fleet release":  {"reply", control.MethodReleaseFleet},
}

// luoctlMethods are the shapes of luoctl's own output, in the io.luo.luoctl
// interface of docs/luoctl-json.md.
var luoctlMethods = map[string]bool{"Version": true, "Needed": true}

// versionBlock finds the declaration of luoctl version's output, the one
// shape that is not luod's, in the documentation.
var versionBlock = regexp.MustCompile("(?s)```varlink\n(interface io\\.luo\\.luoctl\n.*?)```")

// schemas returns io.luo.Manager's description and the one of luoctl's own
// output, from the documentation.
func schemas(t *testing.T, doc string) (manager, luoctl *control.IDL) {
	t.Helper()
	manager, err := control.ParseManagerIDL()
	if err != nil {
		t.Fatal(err)
	}
	m := versionBlock.FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("%s: no ```varlink block declaring interface io.luo.luoctl", jsonDoc)
	}
	luoctl, err = control.ParseIDL(m[1])
	if err != nil {
		t.Fatalf("%s: io.luo.luoctl: %v", jsonDoc, err)
	}
	return manager, luoctl
}

// checkOutput returns where the output of luoctl with args does not have
// its command's shape.
func checkOutput(manager, luoctl *control.IDL, args []string, out string) []string {
	cmd, s, ok := shapeOf(args)
	if !ok {
		return []string{"no JSON shape known for luoctl " + strings.Join(args, " ")}
	}
	idl := manager
	if luoctlMethods[s.method] {
		idl = luoctl
	}
	var bad []string
	switch s.form {
	case "none":
		if out != "" {
			bad = append(bad, cmd+": prints nothing, got "+out)
		}
	case "reply":
		bad = idl.CheckReply(s.method, []byte(out))
	case "lines":
		if out == "" || !strings.HasSuffix(out, "\n") {
			bad = append(bad, cmd+": want lines, got "+out)
		}
		for l := range strings.Lines(out) {
			if strings.Count(l, "\n") != 1 || !strings.HasPrefix(l, "{") {
				bad = append(bad, cmd+": not one JSON object per line: "+l)
				continue
			}
			bad = append(bad, idl.CheckReply(s.method, []byte(l))...)
		}
	case "replies":
		elems, err := splitArray(out)
		if err != nil {
			return []string{cmd + ": " + err.Error()}
		}
		for _, e := range elems {
			bad = append(bad, idl.CheckReply(s.method, []byte(e))...)
		}
	}
	if s.form != "none" && s.form != "lines" && out != "" && !strings.HasPrefix(out, "{\n  \"") && !strings.HasPrefix(out, "[\n  {") && out != "[]\n" && out != "{}\n" {
		bad = append(bad, cmd+": not indented JSON: "+out)
	}
	return bad
}

// splitArray returns the elements of the JSON array in out.
func splitArray(out string) ([]string, error) {
	var raws []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&raws); err != nil {
		return nil, fmt.Errorf("want a JSON array: %w", err)
	}
	if raws == nil || dec.More() {
		return nil, fmt.Errorf("want one JSON array, got %s", out)
	}
	var elems []string
	for _, r := range raws {
		elems = append(elems, string(r))
	}
	return elems, nil
}

// docExample is one example of docs/luoctl-json.md: a ```console block
// whose first line is "$ luoctl ARGS", the rest its output.
type docExample struct {
	line int // of the command
	args []string
	out  string
}

// docExamples returns the examples of the documentation.
func docExamples(doc string) []docExample {
	var exs []docExample
	var cur *docExample
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case l == "```console":
			cur = &docExample{}
		case cur != nil && l == "```":
			exs = append(exs, *cur)
			cur = nil
		case cur != nil && cur.args == nil:
			rest, ok := strings.CutPrefix(l, "$ luoctl ")
			if !ok {
				rest = "?" + l // not a luoctl command: reported by the test
			}
			cur.line, cur.args = n, strings.Fields(rest)
		case cur != nil:
			cur.out += l + "\n"
		}
	}
	return exs
}

// TestLuoctlJSONDoc checks that every example of docs/luoctl-json.md has
// its command's shape, and that every command has an example.
func TestLuoctlJSONDoc(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(jsonDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	manager, luoctl := schemas(t, doc)
	seen := map[string]bool{}
	for _, ex := range docExamples(doc) {
		if !slices.Contains(ex.args, "--json") {
			t.Errorf("%s:%d: luoctl %s: no --json", jsonDoc, ex.line, strings.Join(ex.args, " "))
		}
		cmd, _, _ := shapeOf(ex.args)
		seen[cmd] = true
		for _, bad := range checkOutput(manager, luoctl, ex.args, ex.out) {
			t.Errorf("%s:%d: luoctl %s: %s", jsonDoc, ex.line, strings.Join(ex.args, " "), bad)
		}
	}
	cmds := luoctlCommands(t)
	for _, cmd := range cmds {
		if _, ok := jsonShapes[cmd]; !ok {
			t.Errorf("luoctl %s: its --json is not in jsonShapes (nor, likely, in %s)", cmd, jsonDoc)
		}
		if !seen[cmd] {
			t.Errorf("%s: no example of luoctl %s --json", jsonDoc, cmd)
		}
	}
	for cmd := range jsonShapes {
		if !slices.Contains(cmds, cmd) {
			t.Errorf("jsonShapes has %q, which luoctl --help does not list", cmd)
		}
	}
}

// luoctlCommands returns luoctl's commands from its help, with "status
// UNIT" for status with units, and no help or completion.
func luoctlCommands(t *testing.T) []string {
	t.Helper()
	help := func(args ...string) []string {
		var out bytes.Buffer
		env := &cli.Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		if code := env.Main(context.Background(), append(args, "--help")); code != 0 {
			t.Fatalf("luoctl %v --help: exit %d\n%s", args, code, out.String())
		}
		_, list, ok := strings.Cut(out.String(), "Available Commands:\n")
		if !ok {
			t.Fatalf("luoctl %v --help lists no commands:\n%s", args, out.String())
		}
		var cmds []string
		for l := range strings.Lines(list) {
			f := strings.Fields(l)
			if len(f) == 0 || !strings.HasPrefix(l, "  ") {
				break
			}
			if f[0] != "help" && f[0] != "completion" {
				cmds = append(cmds, f[0])
			}
		}
		return cmds
	}
	var cmds []string
	for _, c := range help() {
		switch c {
		case "update", "fleet":
			for _, sub := range help(c) {
				cmds = append(cmds, c+" "+sub)
			}
		case "status":
			cmds = append(cmds, "status", "status UNIT")
		default:
			cmds = append(cmds, c)
		}
	}
	if len(cmds) < len(jsonShapes) {
		t.Fatalf("luoctl --help lists %v", cmds)
	}
	return cmds
}
