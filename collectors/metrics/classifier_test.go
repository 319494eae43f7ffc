package metrics

import (
	"slices"
	"sync"
	"testing"
)

func TestKernelClassifierNamesTheFilterClassesConcurrently(t *testing.T) {
	classify := KernelClassifier()
	cases := map[string][]string{
		"ata1.00: status: { DRDY ERR } error: { ICRC ABRT }":       {"crc"},
		"blk_update_request: I/O error, dev sda, sector 2048":      {"io"},
		"EXT4-fs error (device sda1): ext4_find_entry:1455: inode": {"ext4"},
		"usb 1-1: new high-speed USB device number 2":              {},
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg, want := range cases {
				if got := classify(msg); !slices.Equal(got, want) {
					t.Errorf("classify(%q) = %q, want %q", msg, got, want)
				}
			}
		}()
	}
	wg.Wait()
}
