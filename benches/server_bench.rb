# frozen_string_literal: true

# Cost of the ledger server, side by side in one run on loopback:
#   ruby -Ilib benches/server_bench.rb [SECONDS_PER_CASE]      (default 2)
#
# - writes/s and reads/s with 1 and 8 client connections (each client a forked process
#   using Igniter::Ledger.connect), against a StoreServer (memory and file/fsync backends)
#   started in this process, and the embedded store for comparison (1 and 8 threads);
# - p50/p99 latency of each client request;
# - SSE fan-out: 100 /v1/events subscribers, the time from a write until all 100 have it.
#
# Prints a Markdown table. Everything runs on one machine: clients and server share its
# cores, so the figures are a floor, and depend on the load of the machine.

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "igniter-ledger"
require "tmpdir"
require "socket"

L = Igniter::Ledger
SECONDS = Float(ARGV[0] || 2)
VALUE = { title: "Task", status: :open, priority: 2, tags: ["t0"] }.freeze

def percentile(sorted, p)
  return 0.0 if sorted.empty?

  sorted[[(sorted.size * p).ceil - 1, 0].max]
end

# Runs `clients` forked processes doing `op` against url for SECONDS; answers
# [ops/s, p50 ms, p99 ms].
def remote_case(url, clients, op)
  readers = clients.times.map do |c|
    r, w = IO.pipe
    pid = fork do
      r.close
      store = L.connect(url)
      store.write(store: :bench, key: "c#{c}-0", value: VALUE) if op == :read
      lat = []
      n = 0
      stop = Process.clock_gettime(Process::CLOCK_MONOTONIC) + SECONDS
      while (t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)) < stop
        if op == :write
          store.write(store: :bench, key: "c#{c}-#{n % 1000}", value: VALUE)
        else
          store.read(store: :bench, key: "c#{c}-0")
        end
        lat << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000
        n += 1
      end
      w.write(Marshal.dump(lat))
      w.close
      exit!(0)
    end
    w.close
    [r, pid]
  end
  lats = readers.flat_map do |r, pid|
    data = r.read
    Process.wait(pid)
    Marshal.load(data) # rubocop:disable Security/MarshalLoad -- our own child's output
  end.sort
  [lats.size / SECONDS, percentile(lats, 0.50), percentile(lats, 0.99)]
end

def embedded_case(store, threads, op)
  lats = Array.new(threads) { [] }
  threads.times { |t| store.write(store: :bench, key: "e#{t}-0", value: VALUE) }
  stop = Process.clock_gettime(Process::CLOCK_MONOTONIC) + SECONDS
  threads.times.map do |t|
    Thread.new do
      n = 0
      while (t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)) < stop
        op == :write ? store.write(store: :bench, key: "e#{t}-#{n % 1000}", value: VALUE) : store.read(store: :bench, key: "e#{t}-0")
        lats[t] << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000
        n += 1
      end
    end
  end.each(&:join)
  all = lats.flatten.sort
  [all.size / SECONDS, percentile(all, 0.50), percentile(all, 0.99)]
end

def sse_fanout(server, subscribers)
  port = server.adapters.first.port
  socks = subscribers.times.map do
    s = TCPSocket.new("127.0.0.1", port)
    s.write("GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    s
  end
  sleep 0.05 until server.changefeed.subscriber_count >= subscribers
  times = []
  5.times do |i|
    marker = "fanout-#{i}"
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    server.store.write(store: :fan, key: marker, value: { i: i })
    socks.each do |s|
      buf = +""
      buf << s.readpartial(65_536) until buf.include?(marker)
    end
    times << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000
  end
  socks.each(&:close)
  times.sort[times.size / 2]
end

rows = []
Dir.mktmpdir("server-bench") do |dir|
  quiet = L::ServerLogger.new(nil)
  [[:memory, {}], [:file, { backend: :file, path: File.join(dir, "s.wal"), durability: :fsync }]].each do |name, opts|
    server = L::StoreServer.new(address: "127.0.0.1:0", logger: quiet, **opts).start_async
    url = "tcp://#{server.bind_address}"
    [1, 8].each do |clients|
      %i[write read].each do |op|
        rows << ["StoreServer (#{name}#{name == :file ? ", fsync" : ""})", op, clients, *remote_case(url, clients, op)]
      end
    end
    server.stop
  end
  [[:memory, L::LedgerStore.new], [:file, L::LedgerStore.open(File.join(dir, "e.wal"), durability: :fsync)]].each do |name, store|
    [1, 8].each do |threads|
      %i[write read].each do |op|
        rows << ["embedded (#{name}#{name == :file ? ", fsync" : ""})", op, threads, *embedded_case(store, threads, op)]
      end
    end
    store.close
  end
  server = L::StoreServer.new(address: "127.0.0.1:0", logger: quiet).start_with_adapters(http_port: 0)
  fan = sse_fanout(server, 100)
  server.stop
  puts "| server | op | clients | ops/s | p50 ms | p99 ms |"
  puts "|---|---|---:|---:|---:|---:|"
  rows.each { |r| puts format("| %s | %s | %d | %.0f | %.3f | %.3f |", *r) }
  puts
  puts format("SSE fan-out: a write reaches all 100 /v1/events subscribers in %.1f ms (median of 5)", fan)
end
