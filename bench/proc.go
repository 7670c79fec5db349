package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc (100 on
// every Linux architecture sipd runs on).
const clockTick = 100

// procStat is the part of /proc/<pid>/stat the bench reads.
type procStat struct {
	ppid         int
	utime, stime uint64 // clock ticks
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	var s procStat
	s.ppid, _ = strconv.Atoi(f[1])
	s.utime, _ = strconv.ParseUint(f[11], 10, 64)
	s.stime, _ = strconv.ParseUint(f[12], 10, 64)
	return s, nil
}

// descendants returns root and every process below it (Kamailio forks
// its workers from the main process).
func descendants(root int) []int {
	parent := map[int]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if s, err := readProcStat(pid); err == nil {
			parent[pid] = s.ppid
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		for pid, pp := range parent {
			if pp == out[i] {
				out = append(out, pid)
			}
		}
	}
	return out
}

// cpuSeconds is utime+stime of the processes, in seconds (threads
// included, exited threads too).
func cpuSeconds(pids []int) float64 {
	var t uint64
	for _, pid := range pids {
		if s, err := readProcStat(pid); err == nil {
			t += s.utime + s.stime
		}
	}
	return float64(t) / clockTick
}

// memKB sums VmRSS and Pss (from smaps_rollup) of the processes. Pss
// splits shared pages (Kamailio's shared memory) between the processes
// mapping them, so its sum does not count them twice.
func memKB(pids []int) (rss, pss int) {
	for _, pid := range pids {
		rss += kbField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss += kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return rss, pss
}

func kbField(path, key string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key) {
			fs := strings.Fields(line[len(key):])
			if len(fs) > 0 {
				n, _ := strconv.Atoi(fs[0])
				return n
			}
		}
	}
	return 0
}

// cpuTimes is the machine's /proc/stat "cpu" line over every CPU: ticks
// busy at normal or higher priority, ticks of niced work (background
// builds), and all ticks.
type cpuTimes struct{ busy, niced, total uint64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var c cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		c.total += v
		switch i {
		case 1:
			c.niced += v
		case 3, 4: // idle, iowait
		default:
			c.busy += v
		}
	}
	return c
}

// busyCPUs is how many CPUs' worth of time the machine was busy between
// a and b, niced work apart.
func busyCPUs(a, b cpuTimes, elapsed time.Duration) float64 {
	return float64(b.busy-a.busy) / clockTick / elapsed.Seconds()
}

// nicedCPUs is how many CPUs' worth of niced work ran between a and b.
func nicedCPUs(a, b cpuTimes, elapsed time.Duration) float64 {
	return float64(b.niced-a.niced) / clockTick / elapsed.Seconds()
}

// udpRcvbufErrors reads the kernel's UDP RcvbufErrors counter (what
// `nstat UdpRcvbufErrors` shows), IPv4 and IPv6 together.
func udpRcvbufErrors() uint64 {
	var total uint64
	for _, path := range []string{"/proc/net/snmp"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var head []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "Udp: ") {
				continue
			}
			f := strings.Fields(line)
			if head == nil {
				head = f
				continue
			}
			for i, k := range head {
				if k == "RcvbufErrors" && i < len(f) {
					v, _ := strconv.ParseUint(f[i], 10, 64)
					total += v
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/snmp6"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "Udp6RcvbufErrors" {
				v, _ := strconv.ParseUint(f[1], 10, 64)
				total += v
			}
		}
	}
	return total
}

// portBound reports whether something listens on 127.0.0.1:port (UDP:
// bound; TCP: LISTEN).
func portBound(proto string, port int) bool {
	b, err := os.ReadFile("/proc/net/" + proto)
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		if proto == "udp" || f[3] == "0A" {
			return true
		}
	}
	return false
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
