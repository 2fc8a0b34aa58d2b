// Package scratch builds images of one static binary (FROM scratch) through
// a Docker engine's API, offline: nothing is pulled. The quickstart builds
// its example image this way, and the tests build theirs.
package scratch

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// Options say what to build.
type Options struct {
	// Binary is the path of a statically linked program (Go with
	// CGO_ENABLED=0); it becomes /app in the image, its entrypoint.
	Binary string
	// Files are more files to put in the image, by absolute path in the
	// image (mode 0644), e.g. {"/etc/greeting": "hello"}.
	Files map[string]string
	// Tags name the image ("hello:1"); none leaves it untagged.
	Tags []string
	// Labels are set on the image.
	Labels map[string]string
}

// Build builds the image and returns its ID ("sha256:…").
func Build(ctx context.Context, cli client.ImageBuildAPIClient, o Options) (string, error) {
	buildContext, err := contextTar(o)
	if err != nil {
		return "", fmt.Errorf("building an image of %s: %w", o.Binary, err)
	}
	res, err := cli.ImageBuild(ctx, bytes.NewReader(buildContext), client.ImageBuildOptions{
		Tags:        o.Tags,
		Labels:      o.Labels,
		Remove:      true,
		ForceRemove: true,
		// The classic builder needs no session and pulls nothing for
		// FROM scratch.
		Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("building an image of %s: %w", o.Binary, err)
	}
	defer res.Body.Close()
	id, err := readBuildOutput(res.Body)
	if err != nil {
		return "", fmt.Errorf("building an image of %s: %w", o.Binary, err)
	}
	return id, nil
}

// readBuildOutput reads the engine's build messages to their end and
// returns the ID of the image built.
func readBuildOutput(r io.Reader) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	var log strings.Builder
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", err
		}
		log.WriteString(m.Stream)
		if m.Error != nil {
			return "", fmt.Errorf("%s\n%s", m.Error.Message, log.String())
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("the engine did not say which image it built:\n%s", log.String())
	}
	return id, nil
}

// contextTar returns the build context: the Dockerfile, the binary and the
// files.
func contextTar(o Options) ([]byte, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, err
	}
	dockerfile := "FROM scratch\nCOPY app /app\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, data []byte) error {
		h := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("app", 0o755, bin); err != nil {
		return nil, err
	}
	for i, path := range slices.Sorted(maps.Keys(o.Files)) {
		content := o.Files[path]
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("file %q: the path in the image must be absolute", path)
		}
		name := fmt.Sprintf("file-%d", i)
		if err := add(name, 0o644, []byte(content)); err != nil {
			return nil, err
		}
		target, _ := json.Marshal(path)
		dockerfile += fmt.Sprintf("COPY [%q, %s]\n", name, target)
	}
	dockerfile += `ENTRYPOINT ["/app"]` + "\n"
	if err := add("Dockerfile", 0o644, []byte(dockerfile)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
