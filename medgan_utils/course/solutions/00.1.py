with temporary_env(MEDGAN_DEVICE="cpu"):
    forced = get_device()
print("with MEDGAN_DEVICE=cpu:", forced)
with temporary_env(MEDGAN_DEVICE="mps"):
    try:
        mps_result = get_device()
    except RuntimeError as err:
        mps_result = str(err)
print("with MEDGAN_DEVICE=mps:", mps_result)
print("after the block, MEDGAN_DEVICE is", repr(os.environ.get("MEDGAN_DEVICE")))
