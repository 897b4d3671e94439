package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size MiB for the test's data dir (root only).
func mountTmpfs(t *testing.T, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the full-disk test mounts a tmpfs and needs root")
		}
		t.Skip("the full-disk test mounts a tmpfs and needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// TestFullDisk fills a small data dir with uploads: past the free-space reserve they are
// refused with 507 and leave nothing behind, never a 500; a delete still works and frees
// room, and uploads resume. Thumbnails keep being served while the disk cache cannot write.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary on a tmpfs")
	}
	const reserve = 8 << 20
	dataDir := mountTmpfs(t, 48)
	bin := buildBinary(t)
	p := startProcess(t, bin, dataDir, fmt.Sprintf("TIERPIX_MIN_FREE_BYTES=%d", reserve))
	s := &server{URL: p.URL, DataDir: dataDir, logs: p.logs}
	admin := s.basic(t, testAdmin, testAdminPW)

	var accepted []imageJSON
	refusedAt := int64(-1)
	for i := 0; i < 400 && refusedAt < 0; i++ {
		var img imageJSON
		resp, body := admin.upload(fmt.Sprintf("fill-%d.jpg", i), noiseJPEG(t, 1000, 750), &img)
		switch resp.StatusCode {
		case http.StatusCreated:
			accepted = append(accepted, img)
		case http.StatusInsufficientStorage:
			if resp.Header.Get("Retry-After") == "" {
				t.Fatalf("507 without Retry-After: %s", body)
			}
			refusedAt = freeBytes(t, dataDir)
		default:
			t.Fatalf("upload %d: got %d %s, want 201 until 507", i, resp.StatusCode, body)
		}
	}
	if refusedAt < 0 {
		t.Fatalf("%d uploads never met a 507", len(accepted))
	}
	t.Logf("48 MiB tmpfs, 8 MiB reserve: %d uploads accepted, then 507 with %d KiB free", len(accepted), refusedAt>>10)
	if refusedAt < reserve/2 {
		t.Errorf("refused with %d bytes free, want the reserve (%d) mostly kept", refusedAt, reserve)
	}
	if n := countFiles(t, filepath.Join(dataDir, "tmp")); n != 0 {
		t.Errorf("after the 507: got %d temp files, want 0", n)
	}
	if n := countFiles(t, filepath.Join(dataDir, "originals")); n != len(accepted) {
		t.Errorf("after the 507: got %d originals, want the %d accepted", n, len(accepted))
	}
	var list struct {
		Results []imageJSON `json:"results"`
	}
	resp, body := admin.json("GET", "/api/images?limit=100", nil, &list)
	wantStatus(t, "list", resp, body, http.StatusOK)
	if len(list.Results) != min(len(accepted), 100) {
		t.Errorf("listed %d images, want %d", len(list.Results), min(len(accepted), 100))
	}

	// Thumbnails are still served while the disk cache cannot write, and leave no temp file.
	for _, img := range accepted[:3] {
		resp, body := getLink(t, img.Links.Thumbnails[0].URL)
		wantStatus(t, "thumbnail with the disk short of space", resp, body, http.StatusOK)
	}
	if n := countFiles(t, filepath.Join(dataDir, "cache", ".tmp")); n != 0 {
		t.Errorf("cache temp files: got %d, want 0", n)
	}

	// Deletes still work, and free the room uploads need.
	for _, img := range accepted[len(accepted)-4:] {
		resp, body := admin.json("DELETE", "/api/images/"+img.ID, nil, nil)
		wantStatus(t, "delete with the disk at its reserve", resp, body, http.StatusNoContent)
	}
	resp, body = admin.upload("after-delete.jpg", noiseJPEG(t, 1000, 750), nil)
	wantStatus(t, "upload after deletes", resp, body, http.StatusCreated)

	// Something else fills the disk to the last byte: uploads get 507, never 500.
	junk := filepath.Join(dataDir, "junk")
	fillDisk(t, junk)
	resp, body = admin.upload("full.jpg", noiseJPEG(t, 300, 200), nil)
	wantStatus(t, "upload on a full disk", resp, body, http.StatusInsufficientStorage)
	if n := countFiles(t, filepath.Join(dataDir, "tmp")); n != 0 {
		t.Errorf("after the 507 on a full disk: got %d temp files, want 0", n)
	}
	// A delete still goes through: the store gives back its ballast file for it.
	resp, body = admin.json("DELETE", "/api/images/"+accepted[0].ID, nil, nil)
	wantStatus(t, "delete on a disk full to the last byte", resp, body, http.StatusNoContent)
	os.Remove(junk)
	resp, body = admin.upload("after-full.jpg", noiseJPEG(t, 300, 200), nil)
	wantStatus(t, "upload once the disk has room again", resp, body, http.StatusCreated)
}

// fillDisk writes path until the filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			break
		}
	}
	small := buf[:4096]
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
}
