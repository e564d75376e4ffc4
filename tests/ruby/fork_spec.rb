# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

# A forked child shares the parent's WAL descriptor and lock: it must not commit, and must
# not flush the parent's buffered commits when it closes or exits.
RSpec.describe "a file-backed store inherited across fork" do
  it "refuses writes in the child and leaves the parent's log whole" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "fork.wal")
      store = Igniter::Ledger::LedgerStore.open(path, durability: :none)
      store.write(store: :a, key: "k", value: 1) # still in the process's buffer
      child = fork do
        code =
          begin
            store.write(store: :a, key: "child", value: 2)
            1
          rescue Igniter::Ledger::Error => e
            e.message.include?("forked child") ? 0 : 2
          end
        code = 3 unless store.read(store: :a, key: "k") == 1 # reads still work
        store.close # must not write the parent's buffer
        exit(code)  # a normal exit: finalizers run and must not flush either
      end
      Process.wait(child)
      expect($?.exitstatus).to eq(0)
      store.write(store: :a, key: "k", value: 3)
      store.close
      reopened = Igniter::Ledger::LedgerStore.open(path)
      expect(reopened.history(store: :a, key: "k").map(&:value)).to eq([1, 3])
      expect(reopened.fact_count).to eq(2)
      reopened.close
    end
  end
end

# Issue 8, defects 2 and 3, through Ruby's `fork`: commits and checkpoints run without the
# GVL, so a parent thread can hold the ledger's locks at the moment of the fork.
RSpec.describe "forking while a parent thread is busy with the ledger" do
  # The child's exit status, or :hung (then it is killed) after `limit` seconds.
  def wait_child(pid, limit)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + limit
    loop do
      _, status = Process.wait2(pid, Process::WNOHANG)
      return status.exitstatus if status
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        Process.kill(:KILL, pid)
        Process.wait(pid)
        return :hung
      end
      sleep 0.005
    end
  end

  it "never hangs the child: close returns, checkpoint and writes fail with Forked" do
    Dir.mktmpdir do |dir|
      store = Igniter::Ledger::LedgerStore.open(File.join(dir, "busy.wal"))
      stop = false
      busy = Array.new(2) do |t|
        Thread.new do
          i = 0
          until stop
            i += 1
            (i % 10).zero? ? store.checkpoint : store.write(store: :a, key: "k#{t}", value: i)
          end
        end
      end
      results = Array.new(20) do |n|
        sleep 0.003
        pid = fork do
          code = 0
          begin
            n.even? ? store.checkpoint : store.write(store: :a, key: "child", value: 0)
            code |= 1
          rescue Igniter::Ledger::Error => e
            code |= 2 unless e.message.include?("forked child")
          end
          begin
            store.close
          rescue StandardError
            code |= 4
          end
          exit!(code)
        end
        wait_child(pid, 10)
      end
      stop = true
      busy.each(&:join)
      store.close
      expect(results.count(:hung)).to eq(0), "children: #{results.inspect}"
      expect(results.uniq).to eq([0]), "children: #{results.inspect}"
    end
  end

  it "does not keep the parent's file lock: the parent reopens while the child lives" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "lock.wal")
      store = Igniter::Ledger::LedgerStore.open(path)
      store.write(store: :a, key: "k", value: 1)
      pid = fork do
        code =
          begin
            Igniter::Ledger::LedgerStore.open(path).close
            1 # the parent still holds it: must be refused
          rescue Igniter::Ledger::LockedError
            0
          end
        sleep 1.5
        exit!(code)
      end
      sleep 0.3
      store.close
      reopened = Igniter::Ledger::LedgerStore.open(path)
      expect(reopened.fact_count).to eq(1)
      expect(wait_child(pid, 10)).to eq(0)
      reopened.close
    end
  end
end
