package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTrainJSON(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "train", "--dataset", "gauss2d", "--train-size", "200", "--val-size", "50", "--test-size", "1000",
		"--label-noise", "0.1", "--flood-level", "0.3", "--hidden", "16,16", "--optimizer", "adam", "--lr", "0.01",
		"--batch-size", "50", "--epochs", "3", "--seed", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "ascent_fraction", "epochs", "seconds"} {
		if _, ok := got[k].(float64); !ok {
			t.Errorf("field %q missing or not a number in %s", k, out)
		}
	}
	if got["epochs"] != 3.0 || got["flood"] != "flood" || got["flood_level"] != 0.3 || got["dataset"] != "gauss2d" {
		t.Errorf("unexpected fields in %s", out)
	}
	if errOut != "" {
		t.Errorf("stderr %q, want nothing", errOut)
	}
}

func TestTrainACNN(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "train", "--dataset", "mnist", "--train-size", "600", "--val-size", "100", "--test-size", "300",
		"--label-noise", "0.2", "--model", "cnn", "--conv", "4:5:p2:pool2,8:3:pool2", "--hidden", "16", "--lr", "0.1",
		"--batch-size", "30", "--epochs", "3", "--flood-level", "0.5", "--seed", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got struct {
		Model, Conv string
		Hidden      []int
		Epochs      int
		TestAcc     float64 `json:"test_acc"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if got.Model != "cnn" || got.Conv != "4:5:p2:pool2,8:3:pool2" || !slices.Equal(got.Hidden, []int{16}) || got.Epochs != 3 {
		t.Errorf("unexpected fields in %s", out)
	}
	if !(got.TestAcc > 0.2) {
		t.Errorf("test accuracy %v after 3 epochs: the network does not learn", got.TestAcc)
	}
	// The log names the model; the dense layers default to 256.
	code, out, errOut = runCLI(t, "train", "--dataset", "mnist", "--train-size", "60", "--val-size", "20", "--test-size", "20",
		"--model", "cnn", "--conv", "2:3:pool2", "--batch-size", "30", "--epochs", "1")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "model cnn 2:3:pool2 on 1×28×28 images, dense [256]") {
		t.Errorf("the log does not describe the model:\n%s", out)
	}
}

func TestTrainLog(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "train", "--dataset", "sinusoid2d", "--hidden", "8", "--batch-size", "100", "--epochs", "2", "--flood", "iflood", "--flood-level", "0.2")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"epoch 1/2", "epoch 2/2", "val loss", "final: train loss", "test loss", "ascent"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestBadInputExitsWithStatus2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a negative flood level", []string{"--flood-level", "-0.5"}, "flood level"},
		{"a NaN flood level", []string{"--flood-level", "NaN"}, "flood level"},
		{"an infinite flood level", []string{"--flood-level", "+Inf"}, "flood level"},
		{"batch size 0", []string{"--batch-size", "0"}, "batch size"},
		{"a batch larger than the training set", []string{"--batch-size", "801"}, "larger than the training set"},
		{"an empty hidden width list", []string{"--hidden", ""}, "hidden layers"},
		{"a zero hidden width", []string{"--hidden", "10,0"}, "hidden layers"},
		{"an unknown dataset", []string{"--dataset", "cifar"}, "unknown dataset"},
		{"an unknown optimizer", []string{"--optimizer", "lbfgs"}, "optimizer"},
		{"an unknown flooding method", []string{"--flood", "deluge"}, "unknown method"},
		{"a missing csv file", []string{"--dataset", "csv:/nonexistent/data.csv"}, "not found"},
		{"a missing MNIST directory", []string{"--dataset", "mnist", "--data-dir", "/nonexistent"}, "go mod download"},
		{"label noise of 1", []string{"--label-noise", "1"}, "noise"},
		{"an unknown flag", []string{"--learning-rate", "0.1"}, "unknown flag"},
		{"a flag without its value", []string{"--epochs"}, "needs an argument"},
		{"a value of the wrong type", []string{"--epochs", "ten"}, "invalid argument"},
		{"an argument", []string{"mnist"}, "takes no arguments"},
		{"zero threads", []string{"--threads", "0"}, "threads"},
		{"an unknown model", []string{"--model", "resnet"}, `--model "resnet": want mlp or cnn`},
		{"conv layers for an MLP", []string{"--conv", "4:3"}, "--conv: convolutional layers need --model cnn"},
		{"conv layers that do not parse", []string{"--model", "cnn", "--conv", "4x3"}, `layer 1 "4x3": no kernel size`},
		{"a cnn on rows that are not images", []string{"--model", "cnn"}, "need images, and the rows of gauss2d are not"},
		{"a kernel larger than the image", []string{"--model", "cnn", "--dataset", "mnist", "--train-size", "50", "--batch-size", "10", "--conv", "4:30"}, "a 30×30 kernel does not fit its 1×28×28 input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"train", "--dataset", "gauss2d", "--epochs", "1", "--hidden", "4"}, tc.args...)
			code, out, errOut := runCLI(t, args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "floodtune: ") || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("stderr %q, want one line naming %q", errOut, tc.want)
			}
			if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
				t.Fatalf("stderr has a stack trace: %q", errOut)
			}
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestDivergenceIsAnErrorNotAPanic(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI(t, "train", "--dataset", "gauss2d", "--hidden", "16", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "5", "--json")
	if code != 1 || !strings.Contains(errOut, "diverged at epoch") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q; want 1 and one line saying where it diverged", code, errOut)
	}
}

func TestVersionNamesTheBLAS(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.Contains(out, "BLAS: ") || !strings.Contains(out, "floodtune ") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
