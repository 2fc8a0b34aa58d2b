package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"bluegreen/internal/params"
	"bluegreen/internal/store"
)

// DataEnv names the environment variable holding the default data directory.
const DataEnv = "BLUEGREEN_DATA"

// defaultDataDir is $BLUEGREEN_DATA, else ./.bluegreen.
func defaultDataDir() string {
	if d := os.Getenv(DataEnv); d != "" {
		return d
	}
	return ".bluegreen"
}

// exactlyOneFile wraps cobra's argument check as a usage error.
func exactlyOneFile(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(1)(cmd, args); err != nil {
		return usageError{fmt.Errorf("%s: %w (usage: %s)", cmd.Name(), err, cmd.UseLine())}
	}
	if args[0] == "" {
		return usageError{fmt.Errorf("%s: FILE is empty", cmd.Name())}
	}
	return nil
}

type backupOptions struct {
	DataDir string
	File    string
}

func newBackupCmd() *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the database to FILE, while the server runs",
		Args:  exactlyOneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runBackup(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data", "", "data directory (default $"+DataEnv+" or ./.bluegreen)")
	return cmd
}

func runBackup(ctx context.Context, out io.Writer, o backupOptions) error {
	if o.DataDir == "" {
		o.DataDir = defaultDataDir()
	}
	if err := store.BackupDir(ctx, o.DataDir, o.File); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, err := os.Stat(o.File)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(out, "backup of %s written to %s (%d bytes)\n", o.DataDir, o.File, info.Size())
	// Secure params in the backup are useless without their key, which is
	// deliberately not copied into it.
	fmt.Fprintf(out, "secure params need the key too: keep %s (or $%s) safe separately\n",
		filepath.Join(o.DataDir, params.KeyFile), params.KeyEnv)
	return nil
}

type restoreOptions struct {
	DataDir string
	File    string
}

func newRestoreCmd() *cobra.Command {
	var o restoreOptions
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the database with a backup (the server must be stopped)",
		Args:  exactlyOneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.File = args[0]
			return runRestore(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data", "", "data directory (default $"+DataEnv+" or ./.bluegreen)")
	return cmd
}

func runRestore(ctx context.Context, out io.Writer, o restoreOptions) error {
	if o.DataDir == "" {
		o.DataDir = defaultDataDir()
	}
	previous, err := store.Restore(ctx, o.File, o.DataDir)
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("%w; stop the bluegreen server using %s first", err, o.DataDir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "restored %s into %s\n", o.File, o.DataDir)
	if previous != "" {
		fmt.Fprintf(out, "the database it replaced is kept as %s\n", previous)
	}
	return nil
}
