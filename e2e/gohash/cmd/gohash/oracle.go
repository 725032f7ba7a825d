// The oracle computes Argo Rollouts' two hashes with Go's own encoding, for the tests that hold
// Sluice's hashes to them. It reads one JSON request a line on stdin and writes one JSON answer a line:
//
//	{"template": {...}, "collisionCount": 2}  ->  {"hash": "...", "json": "<json.Marshal of the template>"}
//	{"steps": [...]}                           ->  {"hash": "...", "json": "<json.Marshal of the steps>"}
//	{"quantity": "1.5Gi"}                      ->  {"json": "<json.Marshal of the parsed Quantity>"}
//
// Requests are decoded as client-go decodes objects (sigs.k8s.io/json, case-sensitive); a request that does
// not decode is answered with {"error": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/conditions"
	"github.com/argoproj/argo-rollouts/utils/hash"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"os"
	kjson "sigs.k8s.io/json"
)

type request struct {
	Template       json.RawMessage `json:"template"`
	CollisionCount *int32          `json:"collisionCount"`
	Steps          json.RawMessage `json:"steps"`
	Quantity       *string         `json:"quantity"`
}

type answer struct {
	Hash  string `json:"hash,omitempty"`
	JSON  string `json:"json,omitempty"`
	Error string `json:"error,omitempty"`
}

func templateHash(raw json.RawMessage, collisionCount *int32) answer {
	var t corev1.PodTemplateSpec
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &t); err != nil {
		return answer{Error: err.Error()}
	}
	encoded, err := json.Marshal(&t)
	if err != nil {
		return answer{Error: err.Error()}
	}
	return answer{Hash: hash.ComputePodTemplateHash(&t, collisionCount), JSON: string(encoded)}
}

func stepsHash(raw json.RawMessage) answer {
	var steps []v1alpha1.CanaryStep
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &steps); err != nil {
		return answer{Error: err.Error()}
	}
	encoded, err := json.Marshal(steps)
	if err != nil {
		return answer{Error: err.Error()}
	}
	ro := &v1alpha1.Rollout{Spec: v1alpha1.RolloutSpec{Strategy: v1alpha1.RolloutStrategy{
		Canary: &v1alpha1.CanaryStrategy{Steps: steps},
	}}}
	return answer{Hash: conditions.ComputeStepHash(ro), JSON: string(encoded)}
}

func quantity(s string) answer {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return answer{Error: err.Error()}
	}
	encoded, err := json.Marshal(q)
	if err != nil {
		return answer{Error: err.Error()}
	}
	return answer{JSON: string(encoded)}
}

func oracle() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var a answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			a = answer{Error: fmt.Sprintf("bad request: %v", err)}
		} else if req.Quantity != nil {
			a = quantity(*req.Quantity)
		} else if req.Steps != nil {
			a = stepsHash(req.Steps)
		} else {
			a = templateHash(req.Template, req.CollisionCount)
		}
		if err := enc.Encode(a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out.Flush()
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
