"""Networks beyond the one-hidden-layer net: deep ReLU MLP, small CNN, tiny GPT, the model zoo
of chapter 06 and the CIFAR-100 loader.
"""

from . import cifar, cnn, deep, transformer, zoo
from .cifar import (
    CIFAR100_ENV,
    CIFAR100_MD5,
    CIFAR100_URL,
    DOWNLOAD_ENV,
    ChecksumError,
    CifarData,
    cifar100,
    cifar100_cache_dir,
    download_cifar100,
    file_md5,
    find_cifar100,
    read_cifar100,
)
from .cnn import CNN_INITS, SmallCNN, cnn_layout, digits_data, small_cnn
from .deep import DeepNet, deep_hessian, deep_net
from .transformer import (
    GPT,
    GPT_INITS,
    adam_mini_blocks,
    adam_mini_num_blocks,
    char_tokens,
    gpt,
    gpt_layout,
    token_windows,
    zen_text,
)
from .zoo import (
    SPECTRA_MODELS,
    SpectraProblem,
    spectra_file_settings,
    spectra_problem,
    spectra_settings,
)

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [*cifar.__all__, *cnn.__all__, *deep.__all__, *transformer.__all__, *zoo.__all__]
