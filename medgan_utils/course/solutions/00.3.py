def offline_ready() -> bool:
    report = environment_report()
    not_ready = [d for d in report["datasets"] if not d["ready_offline"]]
    for d in not_ready:
        print(f"{d['name']} ({d['size']} px) is {d['status']}: run `{d['fix']}`")
    return not not_ready


ok = offline_ready()
print("ready for an offline session:", ok)
