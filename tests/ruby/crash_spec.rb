# frozen_string_literal: true

require_relative "spec_helper"

# Process-kill crash test through the gem (issue 5, item 1).
#
# A child Ruby process (tests/ruby/support/crash_writer.rb) writes facts, appends,
# transactions and checkpoints to a file-backed ledger and reports every acknowledged
# operation on stdout. This spec SIGKILLs it at a random moment — sometimes before it has
# even opened the ledger, sometimes in the middle of an fsync, a batch or a checkpoint —
# reopens the ledger in this process and checks:
#
# - reopen never fails (a torn final frame or a stale .snap.tmp is fine, and reported);
# - every acknowledged fact is present, with its store and key, and every fact seen by an
#   earlier round's reopen is still there;
# - no batch is partly visible: the facts of each batch are all present or all absent,
#   and adjacent in commit order;
# - causation chains are intact for every key; ids are unique; commit order is
#   transaction-time order; partition slices agree with the log;
# - the writer never failed (an exception in any writer thread is reported and ends the
#   writer with status 3, which fails the round);
# - the kills landed inside opens, writes, batches and checkpoints: the writer announces
#   each operation before it starts, so every kill is classified by what it interrupted;
#   some rounds kill the moment an open, a batch or a checkpoint begins; the spec fails
#   if any kind was never hit.
#
# CRASH_ROUNDS (default 20) sets the number of kills; CRASH_SEED fixes the random
# choices. A long soak:
#
#   CRASH_ROUNDS=1000 rspec tests/ruby/crash_spec.rb
#
# prints a summary of what it did (also printed when CRASH_VERBOSE is set).
RSpec.describe "process-kill crash safety (through the gem)" do
  WRITER = File.join(__dir__, "support", "crash_writer.rb")
  ROUNDS = Integer(ENV.fetch("CRASH_ROUNDS", "20"))
  # A fresh ledger file after this many rounds keeps the per-round checks cheap in a soak.
  ROUNDS_PER_FILE = 25
  # Generous bound on the writer going silent (a hang, not a speed requirement).
  SILENCE_LIMIT = 120

  Round = Struct.new(:lines, :status, :stderr, :killed_before_ready, keyword_init: true)

  # Spawns the writer, lets it acknowledge `target` operations (or kills it after
  # `early_delay` seconds when given, wherever it is), SIGKILLs it and collects every
  # complete line it reported.
  def run_writer(path, mode, seed, threads, target:, early_delay: nil, jitter: 0.0, on_line: nil)
    err_path = File.join(tmp_dir, "writer.err")
    io = IO.popen([RbConfig.ruby, "-I", REPO_LIB, WRITER, path, mode.to_s, seed.to_s, threads.to_s],
                  "r", err: [err_path, "w"])
    buffer = +""
    acks = 0
    if early_delay
      sleep(early_delay)
    else
      until acks >= target
        unless IO.select([io], nil, nil, SILENCE_LIMIT)
          Process.kill(:KILL, io.pid)
          io.close
          raise "crash writer (seed #{seed}) reported nothing for #{SILENCE_LIMIT} s: #{File.read(err_path)}"
        end
        chunk = io.read_nonblock(65_536, exception: false)
        break if chunk.nil? # the writer exited on its own: checked below
        next if chunk == :wait_readable

        # The lines completed by this chunk (the first may have begun in an earlier one).
        from = buffer.rindex("\n") || -1
        buffer << chunk
        fresh = buffer[(from + 1)..(buffer.rindex("\n") || -1)] || ""
        break if on_line && fresh.each_line.any? { |l| on_line.call(l.chomp) }

        acks = buffer.count("\n") - buffer.scan(/^(?:b |OPENING|READY)/).size
      end
      sleep(jitter) if jitter.positive?
    end
    Process.kill(:KILL, io.pid)
    buffer << io.read # what was already in the pipe
    io.close
    status = $?
    complete = buffer.end_with?("\n") ? buffer : buffer[0..(buffer.rindex("\n") || -1)]
    lines = complete.lines.map(&:chomp)
    Round.new(lines: lines, status: status, stderr: File.read(err_path),
              killed_before_ready: lines.none? { |l| l.start_with?("READY") })
  end

  # Which operations the kill interrupted: an open begun and not finished; per writer
  # thread, an operation begun and not acknowledged.
  def interrupted(lines)
    hit = []
    hit << :open if lines.include?("OPENING") && lines.none? { |l| l.start_with?("READY") }
    last = {}
    lines.each do |l|
      kind, *rest = l.split(" ")
      case kind
      when "b" then last[rest[0]] = { "w" => :write, "a" => :write, "B" => :batch, "C" => :checkpoint }.fetch(rest[1])
      when "W", "A" then last[rest[3]] = nil
      when "B" then last[rest[3]] = nil
      when "C" then last[rest[1]] = nil
      end
    end
    hit + last.values.compact
  end

  # Checks every invariant on a freshly reopened ledger; returns the ids it holds.
  def verify(store, acked, seen_before, context)
    log = store.fact_log_all
    expect(store.fact_count).to eq(log.size), context
    position = {}
    log.each_with_index { |f, i| position[f.id] = i }
    expect(position.size).to eq(log.size), "#{context}: duplicate fact ids"
    times = log.map(&:transaction_time)
    bad = times.each_cons(2).find_index { |a, b| b <= a }
    expect(bad).to be_nil, "#{context}: commit order differs from transaction-time order at #{bad}"

    missing = acked.reject { |id, _| position.key?(id) }
    expect(missing).to be_empty, "#{context}: #{missing.size} acknowledged facts lost, e.g. #{missing.first(3)}"
    acked.each do |id, (store_name, key)|
      f = log[position[id]]
      expect([f.store.to_s, store_name == "orders" ? f.value[:order_id] : f.key]).to eq([store_name, key]), context
    end
    lost = seen_before.reject { |id| position.key?(id) }
    expect(lost).to be_empty, "#{context}: #{lost.size} facts seen at an earlier reopen are gone"

    batches = Hash.new { |h, k| h[k] = [] }
    log.each do |f|
      v = f.value
      batches[v[:batch]] << [position[f.id], v[:i], v[:size]] if v.is_a?(Hash) && v.key?(:batch)
    end
    batches.each do |tag, members|
      size = members.first[2]
      expect(members.map { |_, i, _| i }).to eq((0...size).to_a), "#{context}: batch #{tag} is partly visible"
      first = members.first[0]
      expect(members.map(&:first)).to eq((first...first + size).to_a), "#{context}: batch #{tag} is not contiguous"
    end

    log.select { |f| f.store == :accounts }.map(&:key).uniq.each do |key|
      hist = store.history(store: :accounts, key: key)
      expect(hist.first.causation).to be_nil, "#{context}: #{key} starts with a causation"
      hist.each_cons(2) do |a, b|
        expect(b.causation).to eq(a.id), "#{context}: causation chain of #{key} broken at #{b.id}"
      end
      chain = store.causation_chain(store: :accounts, key: key)
      expect(chain.map { |e| e[:id] }).to eq(hist.map(&:id)), context
    end

    orders = log.select { |f| f.store == :orders }
    orders.group_by { |f| f.value[:order_id] }.each do |order, facts|
      slice = store.history_partition(store: :orders, partition_key: :order_id, partition_value: order)
      expect(slice.map(&:id)).to eq(facts.map(&:id)), "#{context}: partition #{order} disagrees with the log"
    end
    batches.size.then { |n| @stats[:batches_seen] = [@stats[:batches_seen], n].max }
    position.keys
  end

  it "loses nothing acknowledged, shows no partial batch and always reopens, in fsync and flush modes" do
    seed = Integer(ENV.fetch("CRASH_SEED", rand(2**31).to_s))
    rng = Random.new(seed)
    @stats = Hash.new(0)
    state = {}
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    ROUNDS.times do |round|
      mode = round.even? ? :fsync : :flush
      st = (state[mode] ||= { file: 0, rounds: 0, acked: {}, seen: [] })
      if st[:rounds] == ROUNDS_PER_FILE
        st.merge!(file: st[:file] + 1, rounds: 0, acked: {}, seen: [])
      end
      st[:rounds] += 1
      path = wal_path("#{mode}-#{st[:file]}.wal")
      threads = rng.rand(3).zero? ? 2 : 1
      child_seed = rng.rand(2**31)
      context = "round #{round} (#{mode}, #{threads} thread(s), CRASH_SEED=#{seed}, writer seed #{child_seed})"

      r = case round % 8
          when 0
            # Kill anywhere: while Ruby boots, while the ledger replays, or soon after.
            @stats[:early_kills] += 1
            run_writer(path, mode, child_seed, threads, target: 0, early_delay: rng.rand * 0.4)
          when 1
            run_writer(path, mode, child_seed, threads, target: 1_000_000, on_line: ->(l) { l == "OPENING" })
          when 2
            run_writer(path, mode, child_seed, threads, target: 1_000_000, on_line: ->(l) { l =~ /\Ab \d+ C\z/ })
          when 3
            run_writer(path, mode, child_seed, threads, target: 1_000_000, on_line: ->(l) { l =~ /\Ab \d+ B\z/ })
          else
            target = 1 + rng.rand(mode == :fsync ? 60 : 400)
            run_writer(path, mode, child_seed, threads, target: target, jitter: rng.rand * 0.004)
          end
      expect(r.status.signaled? && r.status.termsig == Signal.list["KILL"]).to be(true),
                                                                           "#{context}: the writer was not killed but ended with #{r.status.inspect}:\n#{r.stderr}"
      expect(r.stderr).to eq(""), "#{context}: the writer complained:\n#{r.stderr}" unless r.stderr.empty?

      error = r.lines.find { |l| l.start_with?("E ") }
      raise "#{context}: the writer failed: #{error}\n#{r.stderr}" if error

      interrupted(r.lines).each { |k| @stats[:"kills_in_#{k}"] += 1 }
      r.lines.each do |line|
        kind, *rest = line.split(" ")
        case kind
        when "W", "A" then st[:acked][rest[0]] = [rest[1], rest[2]]
        when "B"
          ids = rest[2].split(",")
          expect(ids.size).to eq(Integer(rest[1])), context
          ids.each { |id| st[:acked][id] = nil }
          @stats[:batches_acked] += 1
        when "C" then @stats[:checkpoints] += 1
        when "READY", "OPENING", "b" then nil
        else raise "#{context}: unexpected line from the writer: #{line.inspect}"
        end
      end
      @stats[:"#{mode}_kills"] += 1
      @stats[:killed_before_ready] += 1 if r.killed_before_ready
      @stats[:acked_ops] += r.lines.count { |l| l =~ /\A[WAB] / }

      # Reopen: must never fail.
      store = begin
        Igniter::Ledger.open(path)
      rescue StandardError => e
        raise "#{context}: reopen failed: #{e.class}: #{e.message}"
      end
      begin
        report = store.open_report
        @stats[:torn_tails] += 1 if report[:torn_tail]
        @stats[:snapshot_loads] += 1 if report[:snapshot][:status] == :loaded
        @stats[:stale_snapshot_tmps] += 1 if report[:stale_snapshot_tmp]
        expect(report[:recovered]).to be_nil, context
        batch_ids = st[:acked].select { |_, v| v.nil? }.keys
        checked = st[:acked].reject { |_, v| v.nil? }
        ids = verify(store, checked, st[:seen], context)
        missing = batch_ids.reject { |id| store.fact_by_id(id) }
        expect(missing).to be_empty, "#{context}: facts of acknowledged batches lost: #{missing.first(3)}"
        st[:seen] = ids
        @stats[:max_facts] = [@stats[:max_facts], ids.size].max
      ensure
        store.close
      end
    end

    @stats[:seconds] = (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0).round(1)
    if ENV["CRASH_ROUNDS"] || ENV["CRASH_VERBOSE"]
      puts "\ncrash soak: #{ROUNDS} rounds, CRASH_SEED=#{seed}: #{@stats.sort.to_h}"
    end
    expect(@stats[:fsync_kills] + @stats[:flush_kills]).to eq(ROUNDS)
    %i[open write batch checkpoint].each do |k|
      expect(@stats[:"kills_in_#{k}"]).to be > 0, "no kill landed inside a #{k} in #{ROUNDS} rounds: #{@stats.sort.to_h}"
    end
  end
end
