package spec

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestWithImage(t *testing.T) {
	src, err := os.ReadFile("testdata/docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const ref = "127.0.0.1:5000/shop:2.2"
	out, err := WithImage(src, "testdata/docker.yaml", ref)
	if err != nil {
		t.Fatal(err)
	}
	after, err := Parse(out, "after.yaml")
	if err != nil {
		t.Fatalf("the result does not parse:\n%v\n%s", err, out)
	}
	before, err := Parse(src, "before.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if after.Image() != ref {
		t.Errorf("Image() = %q, want %q", after.Image(), ref)
	}
	// Nothing else changed: the specs are equal but for the image.
	before.Docker.Image = ref
	if !reflect.DeepEqual(exported(before), exported(after)) {
		t.Errorf("WithImage changed more than the image:\n%s", out)
	}
	text := string(out)
	for _, kept := range []string{
		"# A container image deployed blue/green: every key of the docker section.\napp: shop\n",
		"image: " + ref + " # pinned to its image ID when the revision is created\n",
		"  volumes: [\"config:/etc/shop\", \"./static:/srv/static:ro\"]\n", // flow style and ./ kept
		"  env: {GOMAXPROCS: \"1\"}\n",
	} {
		if !strings.Contains(text, kept) {
			t.Errorf("the result lost %q:\n%s", kept, text)
		}
	}
	// The order of the keys is kept.
	if strings.Index(text, "entrypoint:") > strings.Index(text, "command:") || strings.Index(text, "hooks:") > strings.Index(text, "params:") {
		t.Errorf("keys moved:\n%s", text)
	}
}

func TestWithImageKeepsTheLayout(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"indent of four", "app: shop\nplatform: docker\ndocker:\n    image: shop:1\n    pull: never\n",
			"app: shop\nplatform: docker\ndocker:\n    image: shop:2\n    pull: never\n"},
		{"quoted", "app: shop\nplatform: docker\ndocker:\n  image: \"shop:1\"  # the tag CI pushed\n",
			"app: shop\nplatform: docker\ndocker:\n  image: \"shop:2\" # the tag CI pushed\n"},
		{"flow section", "app: shop\nplatform: docker\ndocker: {image: shop:1, pull: never}\n",
			"app: shop\nplatform: docker\ndocker: {image: 'shop:2', pull: never}\n"},
		{"comment above", "app: shop\nplatform: docker\ndocker:\n  # bumped by CI\n  image: shop:1\n",
			"app: shop\nplatform: docker\ndocker:\n  # bumped by CI\n  image: shop:2\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := WithImage([]byte(tc.src), FileName, "shop:2")
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", out, tc.want)
			}
		})
	}
}

// A docker section or an image that is an alias is edited without changing
// what else uses the anchor.
func TestWithImageAliases(t *testing.T) {
	src := "x-docker: &d\n  image: &img shop:1\n  pull: never\nx-img: *img\napp: shop\nplatform: docker\ndocker: *d\n"
	out, err := WithImage([]byte(src), FileName, "shop:2")
	if err != nil {
		t.Fatal(err)
	}
	s := mustParse(t, string(out))
	if s.Image() != "shop:2" || s.Docker.Pull != PullNever {
		t.Errorf("docker %+v:\n%s", s.Docker, out)
	}
	if !strings.Contains(string(out), "x-docker: &d\n  image: &img shop:1\n") {
		t.Errorf("the anchored section changed:\n%s", out)
	}

	src = "x-img: &img shop:1\napp: shop\nplatform: docker\ndocker:\n  image: *img\n"
	out, err = WithImage([]byte(src), FileName, "shop:2")
	if err != nil {
		t.Fatal(err)
	}
	if s := mustParse(t, string(out)); s.Image() != "shop:2" || !strings.HasPrefix(string(out), "x-img: &img shop:1\n") {
		t.Errorf("got:\n%s", out)
	}
}

func TestWithImageRefusals(t *testing.T) {
	dockerSpec := []byte(dockerBase)
	cases := []struct {
		name string
		src  []byte
		ref  string
		want string
	}{
		{"process platform", []byte(base), "shop:2", "app shop runs on platform process; --image needs platform: docker or kubernetes"},
		{"bad reference", dockerSpec, "Shop:2", `bad image reference "Shop:2"`},
		{"image id", dockerSpec, "sha256:" + strings.Repeat("1", 64), "is an image ID, not a reference"},
		{"empty reference", dockerSpec, "", `bad image reference ""`},
		{"spec that does not parse", []byte(dockerBase + "  privileged: true\n"), "shop:2", "spec.yaml:5:3: docker.privileged: privileged containers are refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := WithImage(tc.src, "spec.yaml", tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WithImage = %q, %v; want an error containing %q", out, err, tc.want)
			}
		})
	}
	// A problem of the spec is reported as Parse reports it.
	_, err := WithImage([]byte("app: shop\nplatform: docker\n"), FileName, "shop:2")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Errorf("WithImage of a spec without docker: %v, want *Errors", err)
	}
}

// A spec of pods takes an image the same way.
func TestWithImageKubernetes(t *testing.T) {
	src := []byte("app: shop\nplatform: kubernetes\nkubernetes:\n  image: shop:1 # the image\n  instances: 2\n")
	out, err := WithImage(src, "k.yaml", "shop:2")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(out, "after.yaml")
	if err != nil {
		t.Fatalf("the result does not parse:\n%v\n%s", err, out)
	}
	if ref, _ := s.ImageRef(); ref != "shop:2" || s.Kubernetes.Instances != 2 || !strings.Contains(string(out), "image: shop:2 # the image\n") {
		t.Errorf("WithImage gave:\n%s", out)
	}
}
