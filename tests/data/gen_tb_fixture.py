#!/usr/bin/env python3
"""gen_tb_fixture.py — a TensorBoard event file written by tensorboardX (the peer), for
test_tensorboard.c to compare byte for byte: the same three scalars, same wall times and steps.
With an argument, instead parses that (trlc-written) event file with tensorboardX's protobuf
classes and prints its events — a manual cross-check that the peer reads our files.
    pip install tensorboardX && python3 tests/data/gen_tb_fixture.py [EVENT_FILE]
"""
import glob, os, shutil, struct, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

def write_fixture():
    from tensorboardX import SummaryWriter
    d = tempfile.mkdtemp()
    w = SummaryWriter(d)
    w.add_scalar("train/loss", 1.5, 10, walltime=1700000001.5)
    w.add_scalar("train/lr", 2e-4, 0, walltime=1700000002.0)
    w.add_scalar("eval/loss", 0.25, 1 << 40, walltime=1700000003.25)
    w.close()
    src = glob.glob(os.path.join(d, "events.out.tfevents.*"))[0]
    dst = os.path.join(HERE, "fixtures", "tbx_events.bin")
    shutil.copy(src, dst)
    shutil.rmtree(d)
    print("wrote", dst, os.path.getsize(dst), "bytes")

def read(path):
    from tensorboardX.proto import event_pb2
    data = open(path, "rb").read()
    off = 0
    while off < len(data):
        (n,) = struct.unpack_from("<Q", data, off)
        ev = event_pb2.Event()
        ev.ParseFromString(data[off + 12: off + 12 + n])
        print(ev.wall_time, ev.step, ev.file_version or "",
              [(v.tag, v.simple_value) for v in ev.summary.value])
        off += 16 + n

if __name__ == "__main__":
    read(sys.argv[1]) if len(sys.argv) > 1 else write_fixture()
