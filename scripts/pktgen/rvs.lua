-- rvs.lua: rvs-pktgen's traffic profiles for the real Pktgen-DPDK, for
-- operators with hardware NICs (rvs-pktgen does the same in software, see
-- pktgen/ and BENCHMARKS.md).
--
-- How to run (port 0 towards rvsd's "wan" NIC, port 1 on its "lan" side,
-- where the real servers would be; Pktgen counts what arrives there):
--
--   RVS_PROFILE=udp RVS_FLOWS=1000000 RVS_SIZE=64 RVS_RATE=100 \
--   RVS_DST_MAC=<rvsd wan MAC> \
--   pktgen -l 0-4 -n 4 -- -P -m "[1:2].0,[3:4].1" -f scripts/pktgen/rvs.lua
--
-- then `start 0` (or set RVS_START=1 to start at once), `page range` to
-- watch, `stop 0` to end. rvsd needs the matching service, for example
--   rvsadm -A -u 198.18.0.10:80 -s rr
--   rvsadm -a -u 198.18.0.10:80 -r 198.18.1.11:80 -m
-- a route to the clients (198.19.0.0/16) via the generator's address
-- 198.18.0.2, and static neighbours (or ARP answered by the server side)
-- for the real servers; see rvs.example.toml.
--
-- Environment (defaults in brackets), the same names and meanings as
-- rvs-pktgen's options:
--   RVS_PROFILE   udp | tcp-established | syn                      [udp]
--                 (handshake needs a stateful responder: use rvs-pktgen)
--   RVS_SIZE      frame size with FCS, 64..1518                    [64]
--   RVS_FLOWS     client (address, port) tuples                    [1000]
--   RVS_RATE      percent of line rate (Pktgen's unit)             [100]
--   RVS_VIP       the service's address                            [198.18.0.10]
--   RVS_VPORT     the service's port                               [80]
--   RVS_CLIENTS   first client address                             [198.19.0.0]
--   RVS_DST_MAC   the director's MAC on port 0 (required)
--   RVS_PORT      Pktgen port that sends                           [0]
--
-- Flows: Pktgen's range mode steps every field on every packet, not
-- nested, so A source addresses and P source ports make A x P distinct
-- tuples only when A and P are coprime. The script picks P <= 64512 and
-- the smallest A with A x P >= RVS_FLOWS, then lowers P until
-- gcd(A, P) = 1, and prints the tuple count it got (at least RVS_FLOWS
-- for any count up to about 4 billion).
--
-- TCP profiles: tcp-established sends ACK segments with payload (after
-- one round of SYNs, send it first with RVS_PROFILE=syn and a duration
-- of one round, so that rvsd creates the connections: rvs-pktgen's
-- warm-up); syn sends SYNs only. Setting TCP flags from Lua needs a
-- Pktgen with range tcp_flags (21.11 or later); with an older one the
-- script says which command to type.

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local function env(name, default)
    local value = os.getenv(name)
    if value == nil or value == "" then
        return default
    end
    return value
end

local function gcd(a, b)
    while b ~= 0 do
        a, b = b, a % b
    end
    return a
end

local function ip_add(ip, n)
    local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    assert(a, "not an IPv4 address: " .. ip)
    local value = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d) + n
    return string.format("%d.%d.%d.%d", math.floor(value / 16777216) % 256,
        math.floor(value / 65536) % 256, math.floor(value / 256) % 256, value % 256)
end

local profile = env("RVS_PROFILE", "udp")
local size = tonumber(env("RVS_SIZE", "64"))
local flows = tonumber(env("RVS_FLOWS", "1000"))
local rate = tonumber(env("RVS_RATE", "100"))
local vip = env("RVS_VIP", "198.18.0.10")
local vport = tonumber(env("RVS_VPORT", "80"))
local clients = env("RVS_CLIENTS", "198.19.0.0")
local dst_mac = env("RVS_DST_MAC", nil)
local port = env("RVS_PORT", "0")
local first_port = 1024

assert(profile == "udp" or profile == "tcp-established" or profile == "syn",
    "RVS_PROFILE must be udp, tcp-established or syn (handshake: use rvs-pktgen)")
assert(size and size >= 64 and size <= 1518, "RVS_SIZE must be 64..1518")
assert(flows and flows >= 1, "RVS_FLOWS must be at least 1")
assert(dst_mac, "RVS_DST_MAC (the director's MAC on port " .. port .. ") is required")

-- Tuples: P ports and A addresses, coprime (see the header).
local ports = math.min(flows, 64512)
local addresses = math.ceil(flows / ports)
while ports > 1 and gcd(addresses, ports) ~= 1 do
    ports = ports - 1
    addresses = math.ceil(flows / ports)
end

pktgen.set(port, "size", size)
pktgen.set(port, "rate", rate)
pktgen.set_proto(port, profile == "udp" and "udp" or "tcp")
pktgen.set_mac(port, "dst", dst_mac)

pktgen.range.dst_mac(port, "start", dst_mac)
pktgen.range.dst_ip(port, "start", vip)
pktgen.range.dst_ip(port, "inc", "0.0.0.0")
pktgen.range.dst_ip(port, "min", vip)
pktgen.range.dst_ip(port, "max", vip)
pktgen.range.dst_port(port, "start", vport)
pktgen.range.dst_port(port, "inc", 0)
pktgen.range.dst_port(port, "min", vport)
pktgen.range.dst_port(port, "max", vport)

pktgen.range.src_ip(port, "start", clients)
pktgen.range.src_ip(port, "inc", addresses > 1 and "0.0.0.1" or "0.0.0.0")
pktgen.range.src_ip(port, "min", clients)
pktgen.range.src_ip(port, "max", ip_add(clients, addresses - 1))
pktgen.range.src_port(port, "start", first_port)
pktgen.range.src_port(port, "inc", ports > 1 and 1 or 0)
pktgen.range.src_port(port, "min", first_port)
pktgen.range.src_port(port, "max", first_port + ports - 1)

pktgen.range.ip_proto(port, profile == "udp" and "udp" or "tcp")
pktgen.range.pkt_size(port, "start", size)
pktgen.range.pkt_size(port, "inc", 0)
pktgen.range.pkt_size(port, "min", size)
pktgen.range.pkt_size(port, "max", size)

if profile ~= "udp" then
    local flag = profile == "syn" and "syn" or "ack"
    if pktgen.range.tcp_flags ~= nil then
        pktgen.range.tcp_flags(port, "clr", "all")
        pktgen.range.tcp_flags(port, "set", flag)
    else
        printf("this Pktgen has no range tcp_flags in Lua: type 'range %s tcp_flags set %s'\n", port, flag)
    end
end

pktgen.set_range(port, "on")

printf("rvs.lua: %s, %d-byte frames, %d tuples (%d addresses from %s x %d ports from %d), to %s:%d at %d%% of line rate\n",
    profile, size, addresses * ports, addresses, clients, ports, first_port, vip, vport, rate)

if env("RVS_START", "0") == "1" then
    pktgen.start(port)
end
