package cli

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"bluegreen/internal/artifact"
	"bluegreen/internal/spec"
)

// packed is a directory being packed for upload: once the upload has
// been read to its end, digest says what the server must have stored.
type packed struct {
	io.ReadCloser
	done   chan struct{}
	digest artifact.Digest
}

// Digest waits for the packing to end and returns the bundle's digest.
func (p *packed) Digest() artifact.Digest {
	<-p.done
	return p.digest
}

// openBundle returns the archive to upload for src, a directory or an
// archive (.tar.gz, .tgz, .tar or .zip). A directory is packed on the fly
// into the bundle store's canonical .tar.gz, streamed, with the same checks
// the server applies (symlinks that stay inside, no devices, the size
// limits), and returned as a *packed whose digest the caller checks against
// the server's; an archive is sent as it is. With specFile, the bundle's
// bluegreen.yaml is replaced by that file's content (an archive is then
// repacked).
func openBundle(src, specFile string) (io.ReadCloser, error) {
	info, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	var specData []byte
	if specFile != "" {
		if specData, err = os.ReadFile(specFile); err != nil {
			return nil, fmt.Errorf("spec: %w", err)
		}
	}
	if !info.IsDir() && specFile == "" {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		return f, nil
	}
	if !info.IsDir() && !info.Mode().IsRegular() {
		return nil, fmt.Errorf("bundle %s: not a directory or an archive file", src)
	}
	pr, pw := io.Pipe()
	if specData == nil {
		p := &packed{ReadCloser: pr, done: make(chan struct{})}
		go func() {
			defer close(p.done)
			d, err := artifact.Pack(src, pw, artifact.DefaultLimits())
			p.digest = d
			pw.CloseWithError(packError(src, err))
		}()
		return p, nil
	}
	go func() {
		inner, innerW := io.Pipe()
		go func() {
			_, err := artifact.Pack(src, innerW, artifact.DefaultLimits())
			innerW.CloseWithError(packError(src, err))
		}()
		err := replaceSpec(inner, specData, pw)
		inner.CloseWithError(err) // stops Pack if the copy ended early
		pw.CloseWithError(err)
	}()
	return pr, nil
}

func packError(src string, err error) error {
	if err == nil || errors.Is(err, io.ErrClosedPipe) {
		return err
	}
	return fmt.Errorf("packing %s: %w", src, err)
}

// replaceSpec copies the .tar.gz in r to w with its bluegreen.yaml
// replaced by specData.
func replaceSpec(r io.Reader, specData []byte, w io.Writer) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Name == spec.FileName || hdr.Name == "./"+spec.FileName {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: spec.FileName, Mode: 0o644, Size: int64(len(specData)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(specData); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
