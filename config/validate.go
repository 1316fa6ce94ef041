package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/raftkv/raftkv/internal/limits"
)

// Validate reports every problem of c, joined with errors.Join; each one
// names the YAML key to edit. It checks only what the
// cluster uses: with ServerList set, Address and the port bases are ignored
// and not checked.
//
// Two nodes are refused to share a host:port over all their Raft, client and
// metrics ports. Hosts are compared as written (IPs in canonical form, names
// case-insensitively), without resolving names, so "localhost" and
// "127.0.0.1" count as different hosts, and 0.0.0.0 is not known to overlap
// with anything.
func (c Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, invalid(key, format, args...))
	}
	if strings.TrimSpace(c.ClusterID) == "" {
		add("clusterId", "%q is empty; name the cluster", c.ClusterID)
	} else if len(c.ClusterID) > limits.MaxClusterIDBytes {
		add("clusterId", "%d bytes; at most %d (every message between nodes carries it)", len(c.ClusterID), limits.MaxClusterIDBytes)
	}
	if strings.TrimSpace(c.PersistPath) == "" {
		add("persistPath", "%q is empty; give the directory for node data", c.PersistPath)
	}
	if c.TickInterval <= 0 {
		add("tickInterval", "%v; want a positive duration such as 10ms", c.TickInterval)
	}
	if c.ElectionTicks < 1 {
		add("electionTicks", "%d; want at least 1", c.ElectionTicks)
	}
	if c.HeartbeatTicks < 1 {
		add("heartbeatTicks", "%d; want at least 1", c.HeartbeatTicks)
	} else if c.HeartbeatTicks >= c.ElectionTicks && c.ElectionTicks >= 1 {
		add("heartbeatTicks", "%d is not below electionTicks %d; followers would time out between heartbeats", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.SnapshotEntries < 1 {
		add("snapshotEntries", "%d; want at least 1", c.SnapshotEntries)
	}
	if c.SnapshotBytes < 1<<20 {
		add("snapshotBytes", "%d; want at least 1048576 (1 MiB)", c.SnapshotBytes)
	}
	if c.CatchUpEntries < 0 {
		add("catchUpEntries", "%d; want 0 or more", c.CatchUpEntries)
	}
	if c.DiskReserve < 0 {
		add("diskReserve", "%d; want 0 (off) or a number of bytes", c.DiskReserve)
	}
	// Every other size limit is derived from maxValueSize (package
	// limits); refuse a value none fits.
	if _, err := limits.For(c.MaxValueSize); err != nil {
		add("maxValueSize", "%v", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("logLevel", "%q; want debug, info, warn or error", c.LogLevel)
	}
	errs = append(errs, c.validateServers()...)
	return errors.Join(errs...)
}

// invalid builds an errInvalid error about key.
func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", errInvalid, key, fmt.Sprintf(format, args...))
}

// validateServers checks the node list, explicit or derived, and then that
// no two listeners collide.
func (c Config) validateServers() []error {
	var errs []error
	if len(c.ServerList) > 0 {
		errs = c.validateList()
	} else {
		errs = c.validateDerived()
	}
	if len(errs) > 0 {
		return errs // collisions among out-of-range ports would only add noise
	}
	return collisions(c.Servers(), len(c.ServerList) > 0)
}

// validateList checks an explicit servers list.
func (c Config) validateList() []error {
	var errs []error
	if len(c.ServerList) > limits.MaxServers {
		errs = append(errs, invalid("servers", "%d entries; at most %d", len(c.ServerList), limits.MaxServers))
	}
	if c.ServersNum != len(c.ServerList) {
		errs = append(errs, invalid("serversNum", "%d disagrees with the %d entries of servers; drop serversNum or make them agree", c.ServersNum, len(c.ServerList)))
	}
	firstIndex := make(map[uint64]int, len(c.ServerList))
	for i, s := range c.ServerList {
		key := func(field string) string { return fmt.Sprintf("servers[%d].%s", i, field) }
		if s.ID == 0 {
			errs = append(errs, invalid(key("id"), "0; ids start at 1 (0 means \"no node\" in Raft)"))
		} else if j, dup := firstIndex[s.ID]; dup {
			errs = append(errs, invalid(key("id"), "%d repeats servers[%d].id", s.ID, j))
		} else {
			firstIndex[s.ID] = i
		}
		errs = appendErr(errs, checkHost(key("address"), s.Address))
		errs = appendErr(errs, checkPort(key("port"), s.Port, 1, false))
		errs = appendErr(errs, checkPort(key("clientPort"), s.ClientPort, 1, false))
		errs = appendErr(errs, checkPort(key("metricsPort"), s.MetricsPort, 1, true))
	}
	return errs
}

// validateDerived checks the keys nodes are derived from.
func (c Config) validateDerived() []error {
	if c.ServersNum < 1 || c.ServersNum > limits.MaxServers {
		return []error{invalid("serversNum", "%d is outside 1..%d", c.ServersNum, limits.MaxServers)}
	}
	var errs []error
	errs = appendErr(errs, checkHost("address", c.Address))
	errs = appendErr(errs, checkPort("port", c.Port, c.ServersNum, false))
	errs = appendErr(errs, checkPort("clientPort", c.ClientPort, c.ServersNum, false))
	errs = appendErr(errs, checkPort("metricsPort", c.MetricsPort, c.ServersNum, true))
	return errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// checkPort checks a port, or a port base from which n consecutive ports
// are taken. zeroOff allows 0, which means "off" for metrics ports.
func checkPort(key string, port, n int, zeroOff bool) error {
	if zeroOff && port == 0 {
		return nil
	}
	want := "1..65535"
	if zeroOff {
		want = "0 (off) or 1..65535"
	}
	if port < 1 || port > 65535 {
		return invalid(key, "%d is outside %s", port, want)
	}
	if last := port + n - 1; last > 65535 {
		return invalid(key, "%d leaves no room for %d nodes (node %d would get port %d)", port, n, n, last)
	}
	return nil
}

// checkHost checks that host is a bare host name or IP: the port goes in
// the port keys, and a stray "host:port" would otherwise surface only as a
// dial error at run time.
func checkHost(key, host string) error {
	switch {
	case strings.TrimSpace(host) == "":
		return invalid(key, "%q is empty; give a host name or IP", host)
	case strings.ContainsAny(host, " \t\r\n/[]"):
		return invalid(key, "%q is not a bare host name or IP", host)
	case strings.Contains(host, ":") && net.ParseIP(host) == nil:
		return invalid(key, "%q is not a host name or IP; put the port in the port keys", host)
	}
	return nil
}

// collisions refuses two listeners on one host:port across the Raft, client
// and metrics ports of all servers. explicit selects how keys are named:
// servers[i].port for a list, "port (node 2)" for derived nodes.
func collisions(servers []Server, explicit bool) []error {
	type listener struct {
		port  int
		field string
	}
	var errs []error
	owner := make(map[string]string)
	for i, s := range servers {
		host := s.Address
		if ip := net.ParseIP(host); ip != nil {
			host = ip.String()
		} else {
			host = strings.ToLower(host)
		}
		for _, l := range []listener{{s.Port, "port"}, {s.ClientPort, "clientPort"}, {s.MetricsPort, "metricsPort"}} {
			if l.port == 0 {
				continue // metrics off
			}
			name := fmt.Sprintf("%s (node %d)", l.field, s.ID)
			if explicit {
				name = fmt.Sprintf("servers[%d].%s", i, l.field)
			}
			addr := net.JoinHostPort(host, strconv.Itoa(l.port))
			if prev, taken := owner[addr]; taken {
				errs = append(errs, invalid(name, "%s is already used by %s", addr, prev))
				continue
			}
			owner[addr] = name
		}
	}
	return errs
}
