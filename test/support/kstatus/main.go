// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus computes for Kubernetes objects:
// the status Flux, Argo CD-style tools and `kubectl wait`-alikes built on kstatus would show.
// Tests use it (through test/support/kstatus.ts) to check the KeyPool conditions against the
// real library instead of a re-implementation of its rules.
//
// Input on stdin: JSON objects, one after the other (one per line, say) or in one JSON array.
// Output on stdout: one JSON line per object, in order: {"status": "...", "message": "..."},
// status being Current, InProgress, Failed, Terminating, NotFound or Unknown.
// An object kstatus cannot read (status.Compute returns an error) stops the program with exit
// code 1 and the error, naming the object's index, on stderr.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	objects, err := readObjects(in)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for i, raw := range objects {
		// apimachinery's JSON decoding keeps whole numbers as int64, as an API client's
		// Unstructured does: kstatus reads metadata.generation and status.observedGeneration
		// with NestedInt64, which refuses float64.
		var obj map[string]interface{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		if obj == nil {
			return fmt.Errorf("object %d: not a JSON object", i)
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		if err := enc.Encode(result{Status: res.Status.String(), Message: res.Message}); err != nil {
			return err
		}
	}
	return nil
}

// readObjects splits stdin into JSON values: the elements of a top-level array, or each
// top-level value of a stream (newline-delimited JSON).
func readObjects(in io.Reader) ([]json.RawMessage, error) {
	dec := json.NewDecoder(in)
	var objects []json.RawMessage
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading JSON from stdin: %w", err)
		}
		if len(raw) > 0 && raw[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return nil, err
			}
			objects = append(objects, list...)
		} else {
			objects = append(objects, raw)
		}
	}
}
