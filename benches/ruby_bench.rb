# frozen_string_literal: true

# The SPEC §6 workload from Ruby, on igniter-ledger and — in the same run — on SQLite
# through Debian's ruby-sqlite3 (a facts table with the indexes the reads need, WAL mode),
# which is what a Ruby developer would otherwise reach for.
#
#   rake compile
#   ruby -Ilib benches/ruby_bench.rb [N] [--markdown BENCHMARKS-ruby.md]
#
# N (default 100_000) is the number of facts per write phase. Every figure printed is
# measured in this run; the only constants are the 0.5.2 reference rates from SPEC §6,
# used to compute the ratios and to say which targets are met.

require "digest"
require "etc"
require "fileutils"
require "securerandom"
require "tmpdir"
require "igniter-ledger"
require "sqlite3"

N = Integer(ARGV.find { |a| a =~ /\A\d[\d_]*\z/ }&.delete("_") || ENV.fetch("N", "100000"))
MARKDOWN = (i = ARGV.index("--markdown")) ? ARGV[i + 1] : nil
KEYS = [N / 10, 1].max            # 10 versions per key on average
PARTITIONS = [N / 100, 1].max     # 100-fact partition slices
READS = [N * 2, 200_000].min
SLICE_CALLS = [PARTITIONS * 4, 2_000].max
FSYNC_WRITES = 2_000
THREADS = 8
BATCH = 1_000
BATCHES = 50

# SPEC §6: the 0.5.2 pure-Ruby gem on this machine class.
REFERENCE = {
  write: 12_700, read: 207_000, as_of: 50_000, append: 13_000, partition: 72_000,
  file_write: 9_000, reopen: 17_000, ram: 1_000, disk: 372
}.freeze

STATUSES = %i[open in_progress done].freeze
L = Igniter::Ledger

def value(i)
  { title: "Task #{i}", status: STATUSES[i % 3], priority: i % 5, assignee: "user-#{i % 100}", tags: ["t#{i % 7}"] }
end

def event(i)
  { order_id: "o#{i % PARTITIONS}", type: :line_added, sku: "sku-#{i % 1000}", qty: 1 + i % 4 }
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# Runs the block; records operations per second by the wall clock (r[key]) and by this
# process's own CPU time (r[:"#{key}_cpu"]: what the code costs, whatever else the
# machine is running).
def measure(r, key, ops)
  GC.start
  t = now
  c = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  yield
  r[:"#{key}_cpu"] = ops / (Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - c)
  r[key] = ops / (now - t)
end

def rss_kib
  File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
end

# RAM per fact, measured in a fresh Ruby process (so memory freed by earlier phases
# cannot absorb the growth): the RSS slope between n and 3n facts, so the process's fixed
# costs and the Ruby heap's warm-up cancel out.
def ram_per_fact(engine, n)
  out = IO.popen([RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), __FILE__, "--ram", engine, n.to_s], &:read)
  Float(out.lines.last)
end

def ram_child(engine, n)
  writer = case engine
           when "ledger"
             s = L::LedgerStore.new
             ->(i) { s.write(store: :tasks, key: "task-#{i % (3 * KEYS)}", value: value(i)) }
           when "sqlite"
             s = SqliteFacts.new(":memory:")
             ->(i) { s.write("tasks", "task-#{i % (3 * KEYS)}", value(i)) }
           end
  n.times { |i| writer.call(i) }
  GC.start
  a = rss_kib
  (2 * n).times { |i| writer.call(n + i) }
  GC.start
  b = rss_kib
  puts((b - a) * 1024.0 / (2 * n))
end

def loadavg
  File.read("/proc/loadavg").split.first(3).join(" ")
rescue StandardError
  "unknown"
end

def machine
  cpu = File.read("/proc/cpuinfo")[/^model name\s*:\s*(.+)$/, 1] rescue "unknown"
  { nproc: Etc.nprocessors, cpu: cpu.strip, ruby: RUBY_DESCRIPTION, sqlite: SQLite3::SQLITE_VERSION,
    kernel: `uname -sr`.strip, load: loadavg }
end

# ------------------------------------------------------------------ igniter-ledger

def ledger_bench(dir)
  r = {}
  keys = Array.new(KEYS) { |i| "task-#{i}" }
  order_ids = Array.new(PARTITIONS) { |i| "o#{i}" }
  pick = Array.new(READS) { |i| keys[(i * 7919) % KEYS] }

  store = L::LedgerStore.new
  values = Array.new(N) { |i| value(i) }
  measure(r, :write, N) { N.times { |i| store.write(store: :tasks, key: keys[i % KEYS], value: values[i]) } }
  values = nil
  measure(r, :read, READS) { pick.each { |k| store.read(store: :tasks, key: k) } }
  mid = store.fact_log_all[N / 2].transaction_time
  measure(r, :as_of, READS) { pick.each { |k| store.read(store: :tasks, key: k, as_of: mid) } }
  # The same reads with the read cache off: every value is converted to Ruby again.
  cold = L::LedgerStore.new(read_cache: 0)
  store.fact_log_all.each { |f| cold.write(store: :tasks, key: f.key, value: f.value) }
  cold_mid = cold.fact_log_all[N / 2].transaction_time
  measure(r, :read_cold, READS) { pick.each { |k| cold.read(store: :tasks, key: k) } }
  measure(r, :as_of_cold, READS) { pick.each { |k| cold.read(store: :tasks, key: k, as_of: cold_mid) } }
  cold = nil

  events = Array.new(N) { |i| event(i) }
  measure(r, :append, N) { N.times { |i| store.append(history: :order_events, event: events[i], partition_key: :order_id) } }
  events = nil
  slice = store.history_partition(store: :order_events, partition_key: :order_id, partition_value: order_ids[0]).size
  r[:slice_size] = slice
  measure(r, :partition, SLICE_CALLS) do
    SLICE_CALLS.times { |i| store.history_partition(store: :order_events, partition_key: :order_id, partition_value: order_ids[i % PARTITIONS]) }
  end
  measure(r, :partition_values, SLICE_CALLS) do
    SLICE_CALLS.times do |i|
      store.history_partition(store: :order_events, partition_key: :order_id, partition_value: order_ids[i % PARTITIONS]).each(&:value)
    end
  end
  store = nil

  path = File.join(dir, "flush.wal")
  file = L.open(path, durability: :flush)
  values = Array.new(N) { |i| value(i) }
  measure(r, :file_write, N) { N.times { |i| file.write(store: :tasks, key: keys[i % KEYS], value: values[i]) } }
  values = nil
  file.close
  r[:disk] = File.size(path).to_f / N
  reopened = nil
  measure(r, :reopen, N) { reopened = L.open(path) }
  raise "reopen lost facts" unless reopened.fact_count == N

  reopened.checkpoint
  reopened.close
  r[:snapshot_disk] = File.size(path + ".snap").to_f / N
  measure(r, :reopen_snapshot, N) { reopened = L.open(path) }
  raise "reopen lost facts" unless reopened.fact_count == N

  reopened.close

  r[:ram] = ram_per_fact("ledger", N)

  # Durable writes (fsync mode).
  fs = L.open(File.join(dir, "fsync.wal"))
  measure(r, :fsync_one, FSYNC_WRITES) { FSYNC_WRITES.times { |i| fs.write(store: :t, key: "k#{i % 100}", value: value(i)) } }
  per_thread = FSYNC_WRITES / 2
  measure(r, :fsync_threads, per_thread * THREADS) do
    Array.new(THREADS) do |t|
      Thread.new { per_thread.times { |i| fs.write(store: :t, key: "t#{t}-#{i % 100}", value: value(i)) } }
    end.each(&:join)
  end
  batch_values = Array.new(BATCH) { |i| value(i) }
  measure(r, :fsync_batch, BATCH * BATCHES) do
    BATCHES.times do |b|
      fs.transaction { |tx| BATCH.times { |i| tx.write(store: :b, key: "k#{i}", value: batch_values[i]) } }
    end
  end
  fs.close
  r
end

# ------------------------------------------------------------------ SQLite

SCHEMA = <<~SQL
  CREATE TABLE facts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    value_hash TEXT NOT NULL,
    causation TEXT,
    transaction_time REAL NOT NULL,
    valid_time REAL,
    schema_version INTEGER NOT NULL,
    partition_value TEXT
  );
  CREATE UNIQUE INDEX facts_id ON facts(id);
  CREATE INDEX facts_key ON facts(store, key, seq);
  CREATE INDEX facts_partition ON facts(store, partition_value, seq) WHERE partition_value IS NOT NULL;
SQL

# The same operations as the ledger's: fresh id, causation = the key's previous fact,
# value hash, strictly increasing transaction time; values stored with Marshal (the
# type-faithful choice: Symbols stay Symbols).
class SqliteFacts
  def initialize(path, synchronous: "OFF")
    @db = SQLite3::Database.new(path)
    @db.execute("PRAGMA journal_mode=WAL") unless path == ":memory:"
    @db.execute("PRAGMA synchronous=#{synchronous}")
    @db.execute_batch(SCHEMA) if @db.get_first_value("SELECT count(*) FROM sqlite_master WHERE name='facts'").zero?
    @insert = @db.prepare("INSERT INTO facts (id, store, key, value, value_hash, causation, transaction_time, " \
                          "valid_time, schema_version, partition_value) VALUES (?,?,?,?,?,?,?,?,?,?)")
    @latest_id = @db.prepare("SELECT id FROM facts WHERE store=? AND key=? ORDER BY seq DESC LIMIT 1")
    @latest = @db.prepare("SELECT value FROM facts WHERE store=? AND key=? ORDER BY seq DESC LIMIT 1")
    @as_of = @db.prepare("SELECT value FROM facts WHERE store=? AND key=? AND transaction_time<=? ORDER BY seq DESC LIMIT 1")
    @slice = @db.prepare("SELECT id, key, value, causation, transaction_time FROM facts WHERE store=? AND partition_value=? ORDER BY seq")
    @last_tx = 0.0
  end

  attr_reader :db

  def tick
    t = Time.now.to_f
    @last_tx = t > @last_tx ? t : @last_tx + 1e-6
  end

  def write(store, key, value)
    causation = @latest_id.execute!(store, key).first&.first
    blob = Marshal.dump(value)
    tx = tick
    @insert.execute(SecureRandom.uuid, store, key, SQLite3::Blob.new(blob), Digest::SHA256.hexdigest(blob),
                    causation, tx, nil, 1, nil)
    tx
  end

  def append(store, event, partition_key)
    blob = Marshal.dump(event)
    @insert.execute(SecureRandom.uuid, store, SecureRandom.uuid, SQLite3::Blob.new(blob),
                    Digest::SHA256.hexdigest(blob), nil, tick, nil, 1, event[partition_key].to_s)
  end

  def read(store, key)
    row = @latest.execute!(store, key).first
    row && Marshal.load(row[0])
  end

  def read_as_of(store, key, t)
    row = @as_of.execute!(store, key, t).first
    row && Marshal.load(row[0])
  end

  def partition(store, value)
    @slice.execute!(store, value)
  end

  def transaction(&block)
    @db.transaction(&block)
  end

  def close
    [@insert, @latest_id, @latest, @as_of, @slice].each(&:close)
    @db.close
  end
end

def sqlite_bench(dir)
  r = {}
  keys = Array.new(KEYS) { |i| "task-#{i}" }
  order_ids = Array.new(PARTITIONS) { |i| "o#{i}" }
  pick = Array.new(READS) { |i| keys[(i * 7919) % KEYS] }

  db = SqliteFacts.new(":memory:")
  values = Array.new(N) { |i| value(i) }
  mid = nil
  measure(r, :write, N) do
    N.times do |i|
      t = db.write("tasks", keys[i % KEYS], values[i])
      mid = t if i == N / 2
    end
  end
  values = nil
  measure(r, :read, READS) { pick.each { |k| db.read("tasks", k) } }
  measure(r, :as_of, READS) { pick.each { |k| db.read_as_of("tasks", k, mid) } }
  events = Array.new(N) { |i| event(i) }
  measure(r, :append, N) { N.times { |i| db.append("order_events", events[i], :order_id) } }
  events = nil
  r[:slice_size] = db.partition("order_events", order_ids[0]).size
  measure(r, :partition, SLICE_CALLS) { SLICE_CALLS.times { |i| db.partition("order_events", order_ids[i % PARTITIONS]) } }
  measure(r, :partition_values, SLICE_CALLS) do
    SLICE_CALLS.times { |i| db.partition("order_events", order_ids[i % PARTITIONS]).each { |row| Marshal.load(row[2]) } }
  end
  db.close

  path = File.join(dir, "facts.sqlite3")
  file = SqliteFacts.new(path, synchronous: "OFF")
  values = Array.new(N) { |i| value(i) }
  measure(r, :file_write, N) { N.times { |i| file.write("tasks", keys[i % KEYS], values[i]) } }
  values = nil
  file.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
  file.close
  r[:disk] = Dir["#{path}*"].sum { |f| File.size(f) }.to_f / N
  # SQLite does not replay anything on open; "reopen" is open + one read.
  measure(r, :reopen, N) do
    s = SqliteFacts.new(path)
    s.read("tasks", keys[0])
    s.close
  end

  r[:ram] = ram_per_fact("sqlite", N)

  # Durable writes: synchronous=FULL (fsync per commit) in WAL mode.
  fs = SqliteFacts.new(File.join(dir, "fsync.sqlite3"), synchronous: "FULL")
  measure(r, :fsync_one, FSYNC_WRITES) { FSYNC_WRITES.times { |i| fs.write("t", "k#{i % 100}", value(i)) } }
  batch_values = Array.new(BATCH) { |i| value(i) }
  measure(r, :fsync_batch, BATCH * BATCHES) do
    BATCHES.times { fs.transaction { BATCH.times { |i| fs.write("b", "k#{i}", batch_values[i]) } } }
  end
  fs.close
  r
end

# The device: fdatasync calls per second on a small appended write.
def fdatasync_rate(dir)
  File.open(File.join(dir, "sync.bin"), "wb") do |f|
    n = 0
    t = now
    while now - t < 2.0
      f.write("x" * 128)
      f.flush
      f.fdatasync
      n += 1
    end
    n / (now - t)
  end
end

# ------------------------------------------------------------------ report

def fmt(x)
  return "—" if x.nil?

  x >= 100 ? x.round.to_s.reverse.scan(/\d{1,3}/).join(",").reverse : format("%.1f", x)
end

def ratio(a, b)
  return "—" if a.nil? || b.nil? || b.zero?

  format("%.1f×", a / b)
end

if (i = ARGV.index("--ram"))
  ram_child(ARGV[i + 1], Integer(ARGV[i + 2]))
  exit
end

Dir.mktmpdir("igniter-ledger-bench") do |dir|
  m = machine
  $stderr.puts "N=#{N}: running igniter-ledger..."
  led = ledger_bench(dir)
  $stderr.puts "running SQLite..."
  sql = sqlite_bench(dir)
  $stderr.puts "measuring fdatasync..."
  sync = fdatasync_rate(dir)

  rows = [
    ["in-memory write (facts/s)", :write, led[:write], sql[:write], REFERENCE[:write], 25, :higher, led[:write_cpu]],
    ["current read (reads/s)", :read, led[:read], sql[:read], REFERENCE[:read], 5, :higher, led[:read_cpu]],
    ["  … with read_cache: 0", nil, led[:read_cold], sql[:read], REFERENCE[:read], 5, :higher, led[:read_cold_cpu]],
    ["as_of read (reads/s)", :as_of, led[:as_of], sql[:as_of], REFERENCE[:as_of], 15, :higher, led[:as_of_cpu]],
    ["  … with read_cache: 0", nil, led[:as_of_cold], sql[:as_of], REFERENCE[:as_of], 15, :higher, led[:as_of_cold_cpu]],
    ["append + partition_key (facts/s)", :append, led[:append], sql[:append], REFERENCE[:append], nil, :higher, led[:append_cpu]],
    ["history_partition, #{led[:slice_size]}-fact slices (calls/s)", :partition, led[:partition], sql[:partition],
     REFERENCE[:partition], 2, :higher, led[:partition_cpu]],
    ["  … and reading every value (calls/s)", nil, led[:partition_values], sql[:partition_values], REFERENCE[:partition], 2,
     :higher, led[:partition_values_cpu]],
    ["file-backed write, flush / sync=OFF (facts/s)", :file_write, led[:file_write], sql[:file_write], REFERENCE[:file_write],
     nil, :higher, led[:file_write_cpu]],
    ["reopen: WAL replay (facts/s)", :reopen, led[:reopen], nil, REFERENCE[:reopen], 50, :higher, led[:reopen_cpu]],
    ["reopen: snapshot + WAL tail (facts/s)", nil, led[:reopen_snapshot], nil, REFERENCE[:reopen], 50, :higher, led[:reopen_snapshot_cpu]],
    ["RAM per fact (bytes, RSS slope)", :ram, led[:ram], sql[:ram], REFERENCE[:ram], 0.25, :lower],
    ["disk per fact (bytes): WAL / SQLite db", :disk, led[:disk], sql[:disk], REFERENCE[:disk], 0.4, :lower],
    ["disk per fact (bytes): snapshot", nil, led[:snapshot_disk], nil, REFERENCE[:disk], nil, :lower]
  ]

  lines = []
  lines << "Machine: #{m[:nproc]} cores, #{m[:cpu]}, #{m[:kernel]}; #{m[:ruby]}; SQLite #{m[:sqlite]} (ruby-sqlite3 #{SQLite3::VERSION})."
  lines << "Load average (1/5/15 min) before the run: #{m[:load]}; after: #{loadavg}. Figures are wall-clock rates."
  lines << "Size: N = #{N} facts per write phase, #{KEYS} keys, #{READS} reads, #{PARTITIONS} partitions, " \
           "#{SLICE_CALLS} history_partition calls."
  lines << ""
  lines << "| workload | igniter-ledger | SQLite | ledger ÷ SQLite | 0.5.2 reference | ledger ÷ reference | SPEC target | met | ledger, CPU-time rate |"
  lines << "|---|---:|---:|---:|---:|---:|---:|:---:|---:|"
  rows.each do |label, key, l, s, ref, target, dir, cpu|
    vs_sql = dir == :higher ? ratio(l, s) : ratio(s, l)
    vs_ref = dir == :higher ? ratio(l, ref) : ratio(ref, l)
    ok = ->(x) { x && (dir == :higher ? x >= ref * target : x <= ref * target) }
    met = if target.nil? then ""
          elsif ok.call(l) then "yes"
          elsif ok.call(cpu) then "by CPU time"
          else "no"
          end
    goal = if target.nil? then ""
           elsif dir == :higher then "≥ #{target}× (#{fmt(ref * target)})"
           else "≤ #{fmt(ref * target)}"
           end
    lines << "| #{label} | #{fmt(l)} | #{fmt(s)} | #{vs_sql} | #{fmt(ref)} | #{vs_ref} | #{goal} | #{met} | #{fmt(cpu)} |"
  end
  lines << ""
  lines << "Durable writes (fsync mode; SQLite: WAL, synchronous=FULL). Device: #{fmt(sync)} fdatasync/s measured in this run."
  lines << ""
  lines << "| durable workload | igniter-ledger | SQLite | SPEC target | met |"
  lines << "|---|---:|---:|---:|:---:|"
  one = led[:fsync_one]
  lines << "| one writer (writes/s) | #{fmt(one)} | #{fmt(sql[:fsync_one])} | ≥ 85% of fdatasync/s (#{fmt(0.85 * sync)}) | #{one >= 0.85 * sync ? "yes" : "no"} |"
  lines << "| #{THREADS} writer threads (writes/s) | #{fmt(led[:fsync_threads])} | — | ≥ 4× one writer (#{fmt(4 * one)}) | #{led[:fsync_threads] >= 4 * one ? "yes" : "no"} |"
  lines << "| batches of #{BATCH} (facts/s) | #{fmt(led[:fsync_batch])} | #{fmt(sql[:fsync_batch])} | ≥ 200,000 | #{led[:fsync_batch] >= 200_000 ? "yes" : "no"} |"

  puts lines
  if MARKDOWN
    # Only the part between the markers is rewritten, so the notes around it stay.
    begin_mark = "<!-- figures: generated by benches/ruby_bench.rb; do not edit by hand -->"
    end_mark = "<!-- end of generated figures -->"
    block = [begin_mark, *lines, end_mark].join("\n")
    old = File.exist?(MARKDOWN) ? File.read(MARKDOWN) : ""
    text = if old.include?(begin_mark) && old.include?(end_mark)
             old.sub(/#{Regexp.escape(begin_mark)}.*#{Regexp.escape(end_mark)}/m) { block }
           else
             "#{old}#{old.empty? ? "" : "\n"}#{block}\n"
           end
    File.write(MARKDOWN, text)
    $stderr.puts "wrote the figures into #{MARKDOWN}"
  end
end
