with temporary_env(MEDGAN_DEVICE="cpu"):
    forced = get_device()
print("with MEDGAN_DEVICE=cpu:", forced)
assert forced.type == "cpu"
with temporary_env(MEDGAN_DEVICE="mps"):
    try:
        print("with MEDGAN_DEVICE=mps:", get_device())
    except RuntimeError as err:
        print("with MEDGAN_DEVICE=mps: RuntimeError:", err)
print("after the block, MEDGAN_DEVICE is", repr(os.environ.get("MEDGAN_DEVICE")))
