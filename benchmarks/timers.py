"Timing callbacks shared by the benchmark scripts (run them as `python benchmarks/<script>.py`, which puts this folder on the path)."
import time
from fastai.callback.core import Callback, CancelValidException

class TrainTimer(Callback):
    "Wall time of the training phase of each epoch; validation is skipped."
    order = 100
    def before_fit(self): self.times = []
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)
    def before_validate(self): raise CancelValidException()
