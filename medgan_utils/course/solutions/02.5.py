# Fault 4 needs no TensorFlow to reproduce: Python decides at compile time that a name assigned
# anywhere in a function is local to it.
def generator():
    return "a generator model"


def train():
    generator = generator()  # the local `generator` does not exist yet
    return generator


try:
    train()
except UnboundLocalError as err:
    print("UnboundLocalError:", err)
del generator, train

faults_found = {"a", "b", "c", "d", "e", "f"}  # (g), (h) and (i) are not faults
