// The table is the Rust table Sluice encodes Go's JSON with: for every type reachable from
// corev1.PodTemplateSpec and from Argo Rollouts' []CanaryStep, its kind and, for a struct, its fields in the
// order encoding/json writes them, with their omitempty and omitzero options. It is read from the Go types
// themselves (reflect), so the table follows the pinned module versions and is never written by hand.
package main

import (
	"encoding/json"
	"fmt"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"os"
	"reflect"
	"runtime/debug"
	"strings"
)

// The types whose JSON comes from their own MarshalJSON, and the Rust kind that reproduces it.
var custom = map[reflect.Type]string{
	reflect.TypeOf(resource.Quantity{}):  "Quantity",
	reflect.TypeOf(metav1.Time{}):        "Time",
	reflect.TypeOf(intstr.IntOrString{}): "IntOrString",
	reflect.TypeOf(json.RawMessage{}):    "RawJson",
	reflect.TypeOf(metav1.FieldsV1{}):    "RawJson",
}

var (
	marshaler     = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
	textMarshaler = reflect.TypeOf((*interface{ MarshalText() ([]byte, error) })(nil)).Elem()
)

type field struct {
	name                string
	ty                  int
	omitempty, omitzero bool
}

type table struct {
	index map[reflect.Type]int
	byRow map[string]int
	rows  []string
	names []string
}

// add gives a type its index. A struct is numbered before its fields so that it may refer to itself; other
// kinds share one row with every type of the same JSON (all the named string types are one String).
func (tb *table) add(t reflect.Type) int {
	if i, ok := tb.index[t]; ok {
		return i
	}
	if _, isCustom := custom[t]; t.Kind() != reflect.Struct || isCustom {
		row := tb.kind(t)
		i, ok := tb.byRow[row]
		if !ok {
			i = len(tb.rows)
			tb.byRow[row] = i
			tb.rows = append(tb.rows, row)
			tb.names = append(tb.names, t.String())
		}
		tb.index[t] = i
		return i
	}
	i := len(tb.rows)
	tb.index[t] = i
	tb.rows = append(tb.rows, "")
	tb.names = append(tb.names, t.String())
	tb.rows[i] = tb.kind(t)
	return i
}

func (tb *table) kind(t reflect.Type) string {
	if k, ok := custom[t]; ok {
		return "Ty::" + k
	}
	if t.Kind() == reflect.Pointer {
		return fmt.Sprintf("Ty::Ptr(%d)", tb.add(t.Elem()))
	}
	if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) ||
		t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		fail("%s has its own MarshalJSON or MarshalText; give it a Rust kind", t)
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			fail("%s: byte slices have no Rust kind", t)
		}
		return fmt.Sprintf("Ty::Slice(%d)", tb.add(t.Elem()))
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			fail("%s: map keys that are not strings", t)
		}
		return fmt.Sprintf("Ty::Map(%d)", tb.add(t.Elem()))
	case reflect.String:
		return "Ty::String"
	case reflect.Bool:
		return "Ty::Bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "Ty::Int"
	case reflect.Struct:
		var b strings.Builder
		b.WriteString("Ty::Struct(&[")
		for _, f := range tb.fields(t) {
			fmt.Fprintf(&b, "F(%q, %d, %s), ", f.name, f.ty, opts(f))
		}
		s := strings.TrimSuffix(b.String(), ", ")
		return s + "])"
	}
	fail("%s: kind %s has no Rust kind", t, t.Kind())
	return ""
}

func opts(f field) string {
	switch {
	case f.omitempty && f.omitzero:
		return "EZ"
	case f.omitempty:
		return "E"
	case f.omitzero:
		return "Z"
	}
	return "N"
}

// fields lists a struct's fields as encoding/json does: exported, not "-", embedded structs without a name
// flattened in place. A name that two fields share is an error here rather than a silent difference.
func (tb *table) fields(t reflect.Type) []field {
	var out []field
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, rest, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					fail("%s: embedded pointer %s", t, sf.Name)
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if strings.Contains(","+rest+",", ",string,") {
				fail("%s.%s: the string option", t, sf.Name)
			}
			if seen[name] {
				fail("%s: two fields named %q", t, name)
			}
			seen[name] = true
			out = append(out, field{
				name:      name,
				ty:        tb.add(sf.Type),
				omitempty: strings.Contains(","+rest+",", ",omitempty,"),
				omitzero:  strings.Contains(","+rest+",", ",omitzero,"),
			})
		}
	}
	walk(t)
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gohash table: "+format+"\n", args...)
	os.Exit(1)
}

func version(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range info.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "unknown"
}

func printTable() {
	tb := &table{index: map[reflect.Type]int{}, byRow: map[string]int{}}
	template := tb.add(reflect.TypeOf(corev1.PodTemplateSpec{}))
	steps := tb.add(reflect.TypeOf([]v1alpha1.CanaryStep{}))
	fmt.Printf("// Generated by `gohash table` (e2e/gohash) from k8s.io/api %s and github.com/argoproj/argo-rollouts %s.\n",
		version("k8s.io/api"), version("github.com/argoproj/argo-rollouts"))
	fmt.Println("// Do not edit: `bash e2e/scripts/build-gohash.sh --write-tables` writes it again.")
	fmt.Println("#[allow(unused_imports)]")
	fmt.Println("use super::{Field as F, Omit::{E, EZ, N, Z}, Ty};")
	fmt.Println()
	fmt.Printf("/// corev1.PodTemplateSpec.\npub const POD_TEMPLATE_SPEC: usize = %d;\n", template)
	fmt.Printf("/// []v1alpha1.CanaryStep.\npub const CANARY_STEPS: usize = %d;\n\n", steps)
	fmt.Println("/// Every type, by index.")
	fmt.Println("pub static TYPES: &[Ty] = &[")
	for i, row := range tb.rows {
		fmt.Printf("    /* %d %s */ %s,\n", i, tb.names[i], row)
	}
	fmt.Println("];")
}
